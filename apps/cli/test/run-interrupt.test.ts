// `corral run --rm` interrupted while it makes the container: SIGTERM or SIGINT at each step
// leaves nothing (no record, no union mount, no cgroup folder, no process of the run); after a
// SIGKILL at a step, the next corral command reclaims what the run left. The run is stopped at
// a step for real: a pull from a local registry that never answers, and for the steps of the
// launch CORRAL_TEST_PAUSE_AT (src/test-pause.ts), which holds the run on a FIFO of the test's.
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, constants, existsSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { constants as os } from 'node:os';
import { join } from 'node:path';
import { mknod, S_IF } from '@corral/sys';
import { corralBin, removeTree, tempDir } from '@corral/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Sandbox, until } from './helpers.js';

const s = new Sandbox();
const fifos = tempDir('run-interrupt');
let registry: Server;
let port = 0;
const stalled = new Set<Socket>();
let seen = 0;

beforeAll(async () => {
  // A registry that takes connections and never answers: a pull waits on it for good.
  registry = createServer((sock) => {
    stalled.add(sock);
    seen++;
    sock.on('close', () => stalled.delete(sock));
    sock.on('error', () => {});
  });
  await new Promise<void>((res) => registry.listen(0, '127.0.0.1', res));
  port = (registry.address() as { port: number }).port;
});
afterAll(async () => {
  for (const sock of stalled) sock.destroy();
  await new Promise((res) => registry.close(res));
  removeTree(fifos);
  await s.teardown();
});

interface Proc {
  pid: number;
  start: string;
}

/** Field 22 of /proc/PID/stat (start time), or null once the process is gone. */
function startTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

/** Every process descended from `pid` (the run's keeper, the container's init, servers). */
function descendants(pid: number): Proc[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(name)]);
    } catch {
      // gone meanwhile
    }
  }
  const out: Proc[] = [];
  const walk = (p: number) => {
    for (const c of children.get(p) ?? []) {
      const start = startTime(c);
      if (start) out.push({ pid: c, start });
      walk(c);
    }
  };
  walk(pid);
  return out;
}

const living = (procs: Proc[]) => procs.filter((p) => startTime(p.pid) === p.start);

/** The container's cgroup folders, in every hierarchy this test runs in. */
function cgroupDirs(id: string): string[] {
  const out: string[] = [];
  for (const line of readFileSync('/proc/self/cgroup', 'utf8').trim().split('\n')) {
    const [, controllers = '', path = ''] = line.split(':');
    const mount = controllers === '' ? 'unified' : controllers.replace(/^name=/, '');
    const dir = join('/sys/fs/cgroup', mount, path, `corral-${id}`);
    if (existsSync(dir)) out.push(dir);
  }
  return out;
}

const records = () => (existsSync(join(s.root, 'containers')) ? readdirSync(join(s.root, 'containers')) : []);

/** What a run has made, seen from outside (`earlier`: records that were there before it). */
function made(cli: number, earlier: string[]) {
  const ids = records().filter((id) => !earlier.includes(id));
  const mounts = s.mounts().filter((m) => ids.some((id) => m.includes(id)));
  return { ids, mounts, cgroups: ids.flatMap(cgroupDirs), procs: descendants(cli) };
}

async function expectNothingLeft(before: ReturnType<typeof made>): Promise<void> {
  expect(records().filter((id) => before.ids.includes(id))).toEqual([]);
  expect(s.mounts().filter((m) => before.ids.some((id) => m.includes(id)))).toEqual([]);
  expect(before.ids.flatMap(cgroupDirs)).toEqual([]);
  // The run's keeper ends on its own once the run has ended (it may still be on its way out).
  await until(() => living(before.procs).length === 0, "the run's processes to end", 10_000);
}

/** Starts `corral run --rm` held at `step`; resolves once it is there. */
async function runHeldAt(
  step: string,
  image = 'busybox',
  env: Record<string, string> = {},
): Promise<{ cli: ChildProcess; fifo: string; exit: Promise<number | string>; earlier: string[] }> {
  const earlier = records();
  const connections = seen;
  const fifo = join(fifos, `${step}-${Date.now()}.fifo`);
  mknod(fifo, S_IF.FIFO | 0o600);
  // The program ends on the signals the run passes on once it runs (sh as PID 1 has no default handlers).
  const program = ['sh', '-c', 'trap "exit 7" TERM INT; echo ready; while :; do sleep 0.1; done'];
  const cli = spawn(
    process.execPath,
    ['--', corralBin, '--root', s.root, 'run', '--rm', '--network', 'none', image, ...program],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env, CORRAL_TEST_PAUSE_AT: `${step}:${fifo}` },
    },
  );
  let stdout = '';
  let stderr = '';
  cli.stdout!.on('data', (d) => (stdout += d));
  cli.stderr!.on('data', (d) => (stderr += d));
  const exit = new Promise<number | string>((res) => cli.on('exit', (code, sig) => res(sig ?? code ?? -1)));
  if (step === 'pull')
    await until(() => seen > connections || cli.exitCode !== null, 'the pull to reach the registry');
  else
    await until(
      () => stderr.includes(`paused at ${step}`) || cli.exitCode !== null,
      `the run to reach ${step}`,
    );
  // The program runs from "started" on (from "created" when its keeper makes the container):
  // its trap must be set before a signal is passed on.
  if (step === 'started' || (step === 'created' && env.CORRAL_RUNTIME_FAST !== '0'))
    await until(() => stdout.includes('ready') || cli.exitCode !== null, 'the program');
  expect(cli.exitCode, stderr).toBeNull();
  return { cli, fifo, exit, earlier };
}

/**
 * Lets a held run go on (after its signal): opens the FIFO for writing once the run has it open
 * for reading (it says "paused" just before it opens it), or until it has ended.
 */
async function release(fifo: string, cli: ChildProcess): Promise<void> {
  await until(() => {
    if (cli.exitCode !== null || cli.signalCode !== null) return true;
    try {
      closeSync(openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK));
      return true;
    } catch {
      return false; // ENXIO: no reader yet
    }
  }, 'the held run to open its FIFO');
}

// 'record': the container's record and name; 'mounted': its union mount; 'bundle': its spec;
// 'created': its cgroups, with the init in them set up and waiting (with the keeper's fast
// path, which makes and starts the container in one step: the program runs); 'started': the
// program runs.
const STEPS = ['pull', 'record', 'mounted', 'bundle', 'created', 'started'] as const;
const PATHS = [
  { name: 'its keeper makes the container', env: {}, runsFrom: ['created', 'started'] },
  { name: 'through a Node init', env: { CORRAL_RUNTIME_FAST: '0' }, runsFrom: ['started'] },
];

describe.each(PATHS)(
  'corral run --rm interrupted while it makes the container: $name',
  ({ env, runsFrom }) => {
    for (const sig of ['SIGTERM', 'SIGINT'] as const) {
      for (const step of STEPS) {
        it(`${sig} at "${step}" leaves no record, mount, cgroup or process`, async () => {
          const image = step === 'pull' ? `127.0.0.1:${port}/stalled/app:1` : 'busybox';
          const { cli, fifo, exit, earlier } = await runHeldAt(step, image, env);
          const before = made(cli.pid!, earlier);
          if (step !== 'pull') expect(before.ids).toHaveLength(1);
          if (['mounted', 'bundle', 'created', 'started'].includes(step))
            expect(before.mounts).not.toEqual([]);
          if (['created', 'started'].includes(step)) expect(before.cgroups).not.toEqual([]);
          cli.kill(sig);
          if (step !== 'pull') await release(fifo, cli);
          // Before the program runs the run ends as the signal says; once it runs, the program
          // gets the signal and ends with its own code.
          expect(await exit).toBe(runsFrom.includes(step) ? 7 : 128 + os.signals[sig]);
          await expectNothingLeft(before);
        });
      }
    }
  },
);

describe('corral run --rm killed while it makes the container', () => {
  for (const step of STEPS.filter((x) => x !== 'started')) {
    it(`SIGKILL at "${step}": the next command reclaims what the run made`, async () => {
      const image = step === 'pull' ? `127.0.0.1:${port}/stalled/app:1` : 'busybox';
      const { cli, exit, earlier } = await runHeldAt(step, image);
      const before = made(cli.pid!, earlier);
      if (step !== 'pull') expect(before.ids).toHaveLength(1);
      cli.kill('SIGKILL');
      expect(await exit).toBe('SIGKILL');
      // Any command opens the engine, which reclaims what a dead run left.
      const listed = (await s.corral(['ps', '-a', '-q', '--no-trunc'])).out.split('\n');
      expect(listed.filter((id) => before.ids.includes(id))).toEqual([]);
      await expectNothingLeft(before);
    });
  }
});
