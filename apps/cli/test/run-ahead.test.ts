// `corral run` spawns its container's keeper (which starts the init) before the rest of the CLI
// loads (src/early.ts), attached or detached. The keeper of a detached run is handed the
// container later, and its own stderr then goes to the container's keeper.log; a run whose
// arguments or image turn out bad ends the keeper it spawned, and its init, and leaves nothing.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { corralBin, runCorral } from '@corral/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { Sandbox, until } from './helpers.js';

const s = new Sandbox();
afterAll(() => s.teardown());

interface Proc {
  pid: number;
  start: string;
}

function stat(pid: number): { ppid: number; start: string } | null {
  try {
    const st = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
    return { ppid: Number(f[1]), start: f[19] };
  } catch {
    return null;
  }
}

/**
 * Processes other than the CLI (`cli`) whose environment holds `mark` (the keepers it
 * spawned), and their children (inits).
 */
function marked(mark: string, cli: number): Proc[] {
  const pids = readdirSync('/proc')
    .filter((n) => /^\d+$/.test(n))
    .map(Number);
  const keepers = pids.filter((p) => {
    try {
      return p !== cli && readFileSync(`/proc/${p}/environ`, 'latin1').includes(mark);
    } catch {
      return false;
    }
  });
  const out: Proc[] = [];
  for (const p of pids) {
    const st = stat(p);
    if (st && (keepers.includes(p) || keepers.includes(st.ppid))) out.push({ pid: p, start: st.start });
  }
  return out;
}

const living = (procs: Proc[]) => procs.filter((p) => stat(p.pid)?.start === p.start);

/**
 * Runs the CLI with a mark in its environment (its keeper inherits it) and watches /proc while
 * it runs: every keeper it spawned, and every child of one, that was seen.
 */
async function watchedRun(args: string[]): Promise<{ code: number | null; stderr: string; seen: Proc[] }> {
  const mark = `CORRAL_TEST_AHEAD=${randomUUID()}`;
  const [k, v] = mark.split('=');
  const cli = spawn(process.execPath, ['--', corralBin, '--root', s.root, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, [k]: v },
  });
  let stderr = '';
  cli.stderr!.on('data', (d) => (stderr += d));
  cli.stdout!.resume();
  const seen = new Map<string, Proc>();
  const done = new Promise<number | null>((res) => cli.on('exit', (code) => res(code)));
  let ended = false;
  void done.then(() => (ended = true));
  while (!ended) {
    for (const p of marked(mark, cli.pid as number)) seen.set(`${p.pid}:${p.start}`, p);
    await new Promise((r) => setTimeout(r, 2));
  }
  return { code: await done, stderr, seen: [...seen.values()] };
}

describe('a keeper spawned ahead', () => {
  it('serves run -d: the container runs and logs, the keeper writes to keeper.log', async () => {
    const r = await s.corral([
      'run',
      '-d',
      '--name',
      'ahead-d',
      '--network',
      'none',
      'busybox',
      'sh',
      '-c',
      'echo out; sleep 60',
    ]);
    expect(r.status, r.stderr).toBe(0);
    const id = r.out;
    await until(async () => (await s.corral(['logs', 'ahead-d'])).out === 'out', 'the output in the log');
    const record = JSON.parse(readFileSync(join(s.root, 'containers', id, 'container.json'), 'utf8'));
    const keeper = record.state.watcherPid as number;
    expect(stat(keeper)).not.toBeNull();
    // The keeper was spawned before the container existed; once it owns it, its stderr is the log file.
    expect(readlinkSync(`/proc/${keeper}/fd/2`)).toBe(join(s.root, 'containers', id, 'keeper.log'));
    expect((await s.corral(['rm', '-f', 'ahead-d'])).status).toBe(0);
    await until(() => stat(keeper) === null, 'the keeper to end');
  });

  it('serves an attached run with a terminal', async () => {
    const r = await s.corral([
      'run',
      '--rm',
      '-t',
      '--network',
      'none',
      'busybox',
      'sh',
      '-c',
      'test -t 1 && echo tty',
    ]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.out).toBe('tty');
  });

  for (const [what, args, message] of [
    ['a bad limit', ['run', '--rm', '-m', 'lots', '--network', 'none', 'busybox', 'true'], /lots/],
    [
      'a missing image (attached)',
      ['run', '--rm', '--pull', 'never', '--network', 'none', 'no-such-image:1', 'true'],
      /no-such-image/,
    ],
    [
      'a missing image (detached)',
      ['run', '-d', '--pull', 'never', '--network', 'none', 'no-such-image:1', 'true'],
      /no-such-image/,
    ],
  ] as const) {
    it(`is ended with its init when the run fails on ${what}; nothing is left`, async () => {
      const before = existsSync(join(s.root, 'containers')) ? readdirSync(join(s.root, 'containers')) : [];
      const r = await watchedRun([...args]);
      expect(r.code).toBe(125);
      expect(r.stderr).toMatch(message);
      // The keeper was spawned (a run whose flags parse): seen while the CLI ran.
      expect(r.seen.length).toBeGreaterThan(0);
      await until(() => living(r.seen).length === 0, 'the keeper and its init to end', 10_000);
      const after = existsSync(join(s.root, 'containers')) ? readdirSync(join(s.root, 'containers')) : [];
      expect(after).toEqual(before);
    });
  }

  it('serves start of a created container; a start of no container ends it with its init', async () => {
    const c = await s.corral([
      'create',
      '--name',
      'ahead-start',
      '--network',
      'none',
      'busybox',
      'sh',
      '-c',
      'echo started; sleep 60',
    ]);
    expect(c.status, c.stderr).toBe(0);
    const r = await watchedRun(['start', 'ahead-start']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.seen.length).toBeGreaterThan(0);
    await until(
      async () => (await s.corral(['logs', 'ahead-start'])).out === 'started',
      'the output in the log',
    );
    const record = JSON.parse(readFileSync(join(s.root, 'containers', c.out, 'container.json'), 'utf8'));
    // The keeper spawned ahead is the container's.
    expect(r.seen.map((p) => p.pid)).toContain(record.state.watcherPid);
    expect((await s.corral(['rm', '-f', 'ahead-start'])).status).toBe(0);
    const none = await watchedRun(['start', 'no-such-container']);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('no-such-container');
    expect(none.seen.length).toBeGreaterThan(0);
    await until(() => living(none.seen).length === 0, 'the keeper and its init to end', 10_000);
  });

  it('is not spawned for a run whose flags do not parse', async () => {
    const r = await watchedRun(['run', '--rm', '--no-such-flag', 'busybox', 'true']);
    expect(r.code).toBe(125);
    expect(r.stderr).toContain('unknown flag: --no-such-flag');
    expect(r.seen).toEqual([]);
  });

  it('has the CLI environment without NODE_EXTRA_CA_CERTS (Node would parse its file at start)', async () => {
    const ca = join(s.root, 'extra-ca.pem');
    const r = await runCorral(
      s.root,
      ['run', '-d', '--name', 'ahead-env', '--network', 'none', 'busybox', 'sleep', '60'],
      { env: { ...process.env, NODE_EXTRA_CA_CERTS: ca, CORRAL_TEST_ENV: 'kept' } },
    );
    expect(r.status, r.stderr).toBe(0);
    const record = JSON.parse(readFileSync(join(s.root, 'containers', r.out, 'container.json'), 'utf8'));
    const env = readFileSync(`/proc/${record.state.watcherPid}/environ`, 'utf8').split('\0');
    expect(env).toContain('CORRAL_TEST_ENV=kept');
    expect(env).toContain(`PATH=${process.env.PATH}`);
    expect(env.filter((e) => e.includes('EXTRA_CA_CERTS'))).toEqual([]);
    expect((await s.corral(['rm', '-f', 'ahead-env'])).status).toBe(0);
  });
});

describe('an --rm container removed at the end of an attached run', () => {
  const trash = () => join(s.root, 'trash');
  const inTrash = () => (existsSync(trash()) ? readdirSync(trash()) : []);

  it('is gone for the next command at once; its keeper deletes its folder after the CLI has gone', async () => {
    const before = existsSync(join(s.root, 'containers')) ? readdirSync(join(s.root, 'containers')) : [];
    const r = await s.corral([
      'run',
      '--rm',
      '--name',
      'gone-at-once',
      '--network',
      'none',
      'busybox',
      'sh',
      '-c',
      'echo hi > /tmp/x; exit 4',
    ]);
    expect(r.status, r.stderr).toBe(4);
    expect(readdirSync(join(s.root, 'containers'))).toEqual(before);
    expect((await s.corral(['ps', '-a', '--filter', 'name=gone-at-once', '-q'])).out).toBe('');
    // The name is free for the next run.
    const again = await s.corral([
      'run',
      '--rm',
      '--name',
      'gone-at-once',
      '--network',
      'none',
      'busybox',
      'true',
    ]);
    expect(again.status, again.stderr).toBe(0);
    await until(() => inTrash().length === 0, 'the keepers to empty the trash', 10_000);
  });

  it('what a killed deleter left in the trash is deleted by the next command, what a living one holds is not', async () => {
    // Folders as finishAttached leaves them (id.PID.STARTTIME): one whose process is gone, one
    // whose process lives (a sleep of this test's).
    const ended = spawn('true');
    await new Promise((r) => ended.on('exit', r));
    const living = spawn('sleep', ['60']);
    try {
      await until(() => stat(living.pid as number) !== null, 'the sleep to start');
      const dead = join(trash(), `${'a'.repeat(64)}.${ended.pid}.1`);
      const held = join(trash(), `${'b'.repeat(64)}.${living.pid}.${stat(living.pid as number)!.start}`);
      for (const d of [dead, held]) {
        mkdirSync(join(d, 'upper', 'etc'), { recursive: true });
        writeFileSync(join(d, 'upper', 'etc', 'hosts'), 'x');
      }
      expect((await s.corral(['ps', '-a'])).status).toBe(0);
      expect(existsSync(dead)).toBe(false);
      expect(existsSync(held)).toBe(true);
      living.kill('SIGKILL');
      await new Promise((r) => living.on('exit', r));
      expect((await s.corral(['ps', '-a'])).status).toBe(0);
      expect(inTrash()).toEqual([]);
    } finally {
      living.kill('SIGKILL');
    }
  });
});
