// What the fault-injection suite (faults.test.ts) shares: a seeded random, a CLI run killed
// with SIGKILL at a chosen moment, the process tree it left, and the checks that a data root
// is whole and holds nothing of what an interrupted command made.
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'vitest';
import { type Corral, corralBin, gone, mountsUnder, type Result, until } from './helpers.js';

/** Iterations per fault (CORRAL_FAULT_N raises it for a soak) and the seed (CORRAL_FAULT_SEED). */
export const N = Number(process.env.CORRAL_FAULT_N ?? 1);
export const SEED = Number(process.env.CORRAL_FAULT_SEED ?? 17);

/** mulberry32: a small seeded generator, so that a failing run can be replayed with its seed. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface Killed {
  /** How the CLI ended: killed (signal SIGKILL), or its own exit code when it was faster. */
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Every process below the CLI at the moment of the kill (inits, watchers, programs). */
  descendants: number[];
  ms: number;
}

/** PID -> parent PID for every process now. */
function processTable(): Map<number, number> {
  const table = new Map<number, number>();
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      table.set(Number(e), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {}
  }
  return table;
}

function descendantsOf(pid: number): number[] {
  const table = processTable();
  const out: number[] = [];
  const walk = (p: number) => {
    for (const [child, parent] of table)
      if (parent === p) {
        out.push(child);
        walk(child);
      }
  };
  walk(pid);
  return out;
}

/** Runs `corral --root ROOT ARGS` and sends it SIGKILL after `afterMs` (unless it ended first). */
export function killAfter(c: Corral, args: string[], afterMs: number, keepOutput = false): Promise<Killed> {
  const started = Date.now();
  const child = spawn(process.execPath, [corralBin, '--root', c.root, ...args], {
    stdio: ['ignore', keepOutput ? 'pipe' : 'ignore', 'pipe'],
    env: c.env,
  });
  let stderr = '';
  let stdout = '';
  child.stderr!.on('data', (d) => {
    stderr += d;
  });
  child.stdout?.on('data', (d) => {
    stdout += d;
  });
  let descendants: number[] = [];
  const timer = setTimeout(() => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    descendants = descendantsOf(child.pid!);
    child.kill('SIGKILL');
  }, afterMs);
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      resolve({ status, signal, stdout, stderr, descendants, ms: Date.now() - started });
    });
  });
}

/** How long a command takes here and now (the window the kills are spread over). */
export async function timeOf(run: () => Promise<unknown>): Promise<number> {
  const t = Date.now();
  await run();
  return Date.now() - t;
}

/** Waits until every process a killed command left has ended (a container's program may run on). */
export async function processesEnd(k: Killed, ms = 20_000): Promise<void> {
  await until(
    () => k.descendants.every(gone),
    `the processes of a killed command (${k.descendants.join(' ')}) to end`,
    ms,
  );
}

/** A failure message corral chose (one line per problem), never a stack trace. */
export function expectClearError(stderr: string): void {
  expect(stderr).toMatch(/^corral: /m);
  expect(stderr).not.toMatch(/^\s+at .*\(.*:\d+:\d+\)$/m);
}

/** The finding lines of `system check --format json` (none when the root is whole). */
export async function findings(c: Corral): Promise<string[]> {
  const r = await bounded(c, ['system', 'check', '--format', 'json']);
  if (r.status !== 0 && r.status !== 1) throw new Error(`system check failed (${r.status}): ${r.stderr}`);
  const json = JSON.parse(r.out) as { findings: { area: string; problem: string }[]; clean: boolean };
  expect(json.clean).toBe(r.status === 0);
  return json.findings.map((f) => `${f.area}: ${f.problem}`);
}

/** The ids of the containers whose records say they run (read from the records themselves). */
function runningIds(c: Corral): string[] {
  const dir = path.join(c.root, 'containers');
  return readdirSync(dir).filter((id) => {
    try {
      return (
        JSON.parse(readFileSync(path.join(dir, id, 'container.json'), 'utf8')).state.status === 'running'
      );
    } catch {
      return false;
    }
  });
}

/**
 * Runs a CLI command that must end by itself: one still running after `ms` is killed and the
 * test fails saying it hung (instead of waiting for the test's timeout).
 */
export async function bounded(c: Corral, args: string[], ms = 90_000): Promise<Result> {
  const k = await killAfter(c, args, ms, true);
  if (k.signal === 'SIGKILL')
    throw new Error(`corral ${args.join(' ')} hung (killed after ${ms} ms): ${k.stderr}`);
  return { status: k.status, signal: k.signal, stdout: k.stdout, stderr: k.stderr, out: k.stdout.trim() };
}

/** Folders named corral-<id> beneath the test's cgroup parent, in every v1 hierarchy. */
export function cgroupsUnder(parent: string): string[] {
  const out: string[] = [];
  for (const h of readdirSync('/sys/fs/cgroup')) {
    const own = readFileSync('/proc/self/cgroup', 'utf8')
      .split('\n')
      .find((l) => l.split(':')[1]?.split(',').includes(h));
    const base = own ? path.join('/sys/fs/cgroup', h, own.split(':').slice(2).join(':'), parent) : '';
    if (!base || !existsSync(base)) continue;
    for (const e of readdirSync(base)) if (e.startsWith('corral-')) out.push(path.join(base, e));
  }
  return out;
}

/**
 * The root is whole and nothing is left of interrupted commands: `system check` finds
 * nothing, no temp file or session mark stays in the store, no record temp file, and only
 * running containers have mounts and cgroups (beneath `cgroupParent`).
 */
export async function expectNothingLeft(c: Corral, cgroupParent?: string): Promise<void> {
  expect(await findings(c)).toEqual([]);
  const store = path.join(c.root, 'image');
  expect(readdirSync(path.join(store, 'tmp'))).toEqual([]);
  expect(readdirSync(path.join(store, 'locks', 'active'))).toEqual([]);
  const containers = path.join(c.root, 'containers');
  for (const id of readdirSync(containers))
    expect(readdirSync(path.join(containers, id)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  const running = runningIds(c);
  const foreign = (p: string) => !running.some((id) => p.includes(id));
  expect(mountsUnder(c.root).filter((m) => m !== c.root && foreign(m))).toEqual([]);
  if (cgroupParent) expect(cgroupsUnder(cgroupParent).filter(foreign)).toEqual([]);
}

/** Names, sizes and kinds of everything in the image store but its lock files (a snapshot). */
export function storeSnapshot(root: string): string[] {
  const store = path.join(root, 'image');
  const out: string[] = [];
  const walk = (dir: string, rel: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const r = path.join(rel, e.name);
      if (r === 'locks') continue;
      if (e.isDirectory()) {
        out.push(`${r}/`);
        if (!r.startsWith('l/')) walk(path.join(dir, e.name), r);
      } else out.push(`${r} ${readFileSync(path.join(dir, e.name)).length}`);
    }
  };
  walk(store, '');
  return out.sort();
}

/**
 * A docker-archive made with tar(1), no engine: `base` (an archive corral saved, e.g. busybox)
 * with one layer more per folder of `layers`, named `tag`. Fast to make, and every byte known.
 */
export function composeArchive(
  out: string,
  work: string,
  tag: string,
  layers: string[],
  base?: string,
): void {
  const dir = path.join(work, `compose-${path.basename(out)}`);
  mkdirSync(dir, { recursive: true });
  let config: { rootfs: { type: string; diff_ids: string[] }; history?: object[]; [k: string]: unknown } = {
    architecture: 'amd64',
    os: 'linux',
    config: {},
    rootfs: { type: 'layers', diff_ids: [] },
    history: [],
  };
  let files: string[] = [];
  if (base) {
    execFileSync('tar', ['-xf', base, '-C', dir]);
    const m = JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8'))[0];
    config = JSON.parse(readFileSync(path.join(dir, m.Config), 'utf8'));
    files = m.Layers;
  }
  for (const [i, folder] of layers.entries()) {
    const name = `extra-${i}.tar`;
    execFileSync('tar', [
      '--sort=name',
      '--mtime=@0',
      '--owner=0',
      '--group=0',
      '--numeric-owner',
      '-cf',
      path.join(dir, name),
      '-C',
      folder,
      '.',
    ]);
    config.rootfs.diff_ids.push(
      `sha256:${createHash('sha256')
        .update(readFileSync(path.join(dir, name)))
        .digest('hex')}`,
    );
    config.history = [
      ...(config.history ?? []),
      { created: '2026-01-01T00:00:00Z', created_by: `layer ${i}` },
    ];
    files.push(name);
  }
  const json = JSON.stringify(config);
  const configName = `${createHash('sha256').update(json).digest('hex')}.json`;
  writeFileSync(path.join(dir, configName), json);
  writeFileSync(
    path.join(dir, 'manifest.json'),
    JSON.stringify([{ Config: configName, RepoTags: [tag], Layers: files }]),
  );
  execFileSync('tar', ['-cf', out, '-C', dir, 'manifest.json', configName, ...files]);
  rmSync(dir, { recursive: true, force: true });
}

/** A folder of `files` (name -> content) under `work`. */
export function folderOf(work: string, name: string, files: Record<string, Buffer | string>): string {
  const dir = path.join(work, name);
  for (const [f, data] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
    writeFileSync(path.join(dir, f), data);
  }
  return dir;
}

export { sleep };
