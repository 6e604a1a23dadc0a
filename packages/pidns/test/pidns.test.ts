import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Cleanups, until } from '@corral/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import {
  flattenTree,
  formatTree,
  namespaceTree,
  type Pid1Process,
  resolveExecutable,
  startPid1,
} from '../dist/index.js';

/** Collects a PID 1 process's stdout. */
function run(argv: string[], init = false): { p: Pid1Process; out: () => string } {
  const p = startPid1(argv, { init, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  p.child.stdout!.on('data', (d) => (out += d));
  p.child.stderr!.on('data', (d) => (out += d));
  return { p, out: () => out };
}

const cleanup = new Cleanups();
afterEach(() => cleanup.run());

const alive = (pid: number) => existsSync(`/proc/${pid}`);

describe('startPid1', () => {
  it('runs the program as PID 1', async () => {
    const { p, out } = run(['sh', '-c', 'echo $$']);
    expect(await p.wait()).toBe(0);
    expect(out().trim()).toBe('1');
  });

  it('gives the namespace its own /proc: ps shows only its processes', async () => {
    const { p, out } = run(['sh', '-c', 'sleep 10 & ps -o pid,comm']);
    expect(await p.wait()).toBe(0);
    const rows = out()
      .trim()
      .split('\n')
      .slice(1)
      .map((l) => l.trim().split(/\s+/));
    expect(rows.map((r) => r[1]).sort()).toEqual(['ps', 'sh', 'sleep']);
    expect(rows.find((r) => r[1] === 'sh')![0]).toBe('1');
  });

  it('reports exit codes as Docker does: the code, or 128 + signal', async () => {
    expect(await run(['sh', '-c', 'exit 3']).p.wait()).toBe(3);
    const { p } = run(['sleep', '30']);
    p.kill('KILL');
    expect(await p.wait()).toBe(137);
  });

  it('fails with 127 for a command that does not exist', async () => {
    const { p, out } = run(['no-such-command-corral']);
    expect(await p.wait()).toBe(127);
    expect(out()).toContain('executable file not found in $PATH');
  });

  it('shows the tree with host PIDs and PIDs inside', async () => {
    const { p } = run(['sh', '-c', 'sleep 30 & sleep 30 & wait']);
    await until(
      () => flattenTree(p.tree()).filter((n) => n.command === 'sleep 30').length === 2,
      'both sleepers',
    );
    const [root] = p.tree();
    expect(root.hostPid).toBe(p.pid);
    expect(root.nsPid).toBe(1);
    expect(root.children.map((c) => c.command)).toEqual(['sleep 30', 'sleep 30']);
    for (const c of root.children) {
      expect(c.hostPid).not.toBe(c.nsPid);
      expect(c.nsPid).toBeGreaterThan(1);
    }
    const drawn = formatTree(p.tree()).split('\n');
    expect(drawn[0]).toBe(`${p.pid} (1) sh -c sleep 30 & sleep 30 & wait`);
    expect(drawn[1]).toMatch(/^├─ \d+ \(\d+\) sleep 30$/);
    expect(drawn[2]).toMatch(/^└─ \d+ \(\d+\) sleep 30$/);
    p.kill('KILL');
    await p.wait();
  });

  it('killing PID 1 kills every process of the namespace', async () => {
    // The sleepers are in their own process groups (setsid) and ignore SIGTERM/SIGHUP:
    // only the kernel's teardown of the namespace can end them.
    const { p } = run([
      'sh',
      '-c',
      'for i in 1 2 3; do setsid sh -c "trap \\"\\" TERM HUP; sleep 60" & done; sleep 60',
    ]);
    await until(() => flattenTree(p.tree()).length >= 7, 'the sleepers');
    const pids = flattenTree(p.tree()).map((n) => n.hostPid);
    expect(pids.length).toBeGreaterThanOrEqual(7);
    p.kill('KILL');
    expect(await p.wait()).toBe(137);
    await until(() => pids.every((pid) => !alive(pid)), 'every process to be gone');
    expect(namespaceTree(p.pid)).toEqual([]);
  });
});

describe('init mode', () => {
  it('runs the program as a child of corral init', async () => {
    const { p, out } = run(['sh', '-c', 'echo $$; cat /proc/1/cmdline | tr "\\0" " "'], true);
    expect(await p.wait()).toBe(0);
    const [pid, init] = out().trim().split('\n');
    expect(Number(pid)).toBeGreaterThan(1);
    expect(init).toContain('pid1-entry');
  });

  it('reaps orphaned zombies', async () => {
    // The inner sleep's parent exits at once, so the sleep is reparented to PID 1; when it
    // ends it would stay a zombie unless PID 1 reaps it.
    const { p } = run(['sh', '-c', 'sh -c "sleep 0.2 &"; sleep 30'], true);
    await until(() => flattenTree(p.tree()).some((n) => n.command === 'sleep 0.2'), 'the orphan');
    await until(
      () => !flattenTree(p.tree()).some((n) => n.command === 'sleep 0.2' || n.state === 'Z'),
      'the orphan to be reaped',
    );
    expect(flattenTree(p.tree()).filter((n) => n.state === 'Z')).toEqual([]);
    p.kill('KILL');
    await p.wait();
  });

  it('forwards SIGTERM to the program and exits with its code', async () => {
    const { p } = run(['sh', '-c', 'trap "exit 42" TERM; while :; do sleep 0.05; done'], true);
    await until(() => flattenTree(p.tree()).some((n) => n.command.startsWith('sleep')), 'the loop');
    p.kill('TERM');
    expect(await p.wait()).toBe(42);
  });

  it('exits with 128 + S when the program is killed by S', async () => {
    const { p } = run(['sh', '-c', 'kill -USR1 $$'], true);
    expect(await p.wait()).toBe(128 + 10);
  });
});

describe('resolveExecutable', () => {
  it('finds programs on PATH and gives Docker exit codes otherwise', () => {
    expect(resolveExecutable('sh', '/usr/bin:/bin')).toMatch(/\/sh$/);
    const dir = cleanup.tempDir('pidns');
    writeFileSync(join(dir, 'data'), 'not a program', { mode: 0o644 });
    expect(() => resolveExecutable('data', dir)).toThrow(expect.objectContaining({ exitCode: 126 }));
    expect(() => resolveExecutable(`${dir}/data`, '')).toThrow('permission denied');
    expect(() => resolveExecutable('/no/such', '')).toThrow(expect.objectContaining({ exitCode: 127 }));
    expect(resolveExecutable('/bin/sh', '', '/')).toBe('/bin/sh');
  });
});
