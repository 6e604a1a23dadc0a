// The container's keeper (packages/engine/src/keeper.ts): a container outlives the CLI that
// runs it, keeps its own exit code, and is cleaned up when it was --rm; a keeper that is
// SIGKILLed leaves a truthful record that every command can end on; restart policies.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { corralBin } from '@corral/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { alive, Sandbox, until } from './helpers.js';

const s = new Sandbox();
afterAll(() => s.teardown());

const inspect = async (name: string) => JSON.parse((await s.corral(['inspect', name])).out)[0];
const status = async (name: string) =>
  (await s.corral(['ps', '-a'])).out.split('\n').find((l) => l.trim().endsWith(` ${name}`)) ?? '';

/** `corral run ...` in the background, as a user's shell would have it. */
function background(args: string[]): { child: ChildProcess; exited: Promise<number | null> } {
  const child = spawn(process.execPath, ['--', corralBin, '--root', s.root, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.resume();
  child.stderr?.resume();
  return { child, exited: new Promise((r) => child.on('exit', (code) => r(code))) };
}

/** The container's cgroup folders, from the runtime's state while it runs. */
function cgroupDirs(id: string): string[] {
  const st = JSON.parse(readFileSync(join(s.root, 'runtime', id, 'state.json'), 'utf8'));
  return Object.values(st.cgroupDirs ?? {}) as string[];
}

/** What of a container is left on the machine: its runtime state, cgroup folders, mounts. */
function leftovers(id: string, cgroups: string[]): string[] {
  return [
    ...(existsSync(join(s.root, 'runtime', id)) ? [`runtime/${id}`] : []),
    ...cgroups.filter((d) => existsSync(d)),
    ...s.mounts().filter((m) => m.includes(id)),
  ];
}

describe('the attached CLI is SIGKILLed', () => {
  it('the program goes on under its keeper, and its own exit code and finish time are recorded', async () => {
    const run = background(['run', '--name', 'orphan', 'busybox', 'sh', '-c', 'sleep 6; exit 7']);
    await until(async () => (await status('orphan')).includes('Up'), 'orphan to run');
    const cgroups = cgroupDirs((await inspect('orphan')).id);
    expect(cgroups.length).toBeGreaterThan(0);
    run.child.kill('SIGKILL');
    const killedAt = Date.now();
    await run.exited;
    expect(await status('orphan')).toContain('Up'); // not ended with its CLI
    await until(
      async () => (await status('orphan')).includes('Exited (7)'),
      'the exit code 7 to be recorded',
    );
    const r = await inspect('orphan');
    expect(r.state.exitCode).toBe(7);
    expect(r.state.error).toBeNull();
    expect(Date.parse(r.state.finishedAt)).toBeGreaterThan(killedAt);
    expect(leftovers(r.id, cgroups)).toEqual([]);
  });

  it('an --rm container is removed when its program ends, leaving nothing', async () => {
    const run = background(['run', '--rm', '--name', 'gone', 'busybox', 'sh', '-c', 'sleep 4; exit 3']);
    await until(async () => (await status('gone')).includes('Up'), 'gone to run');
    const { id } = await inspect('gone');
    const cgroups = cgroupDirs(id);
    run.child.kill('SIGKILL');
    await run.exited;
    await until(async () => !existsSync(join(s.root, 'containers', id)), 'the --rm container to be removed');
    expect(leftovers(id, cgroups)).toEqual([]);
  });
});

describe('the keeper is SIGKILLed', () => {
  it('ps, wait and logs -f end; the record says why; the next command leaves nothing', async () => {
    await s.corral(['run', '-d', '--name', 'kept', 'busybox', 'sh', '-c', 'echo up; sleep 60']);
    const r = await inspect('kept');
    const keeper = r.state.watcherPid as number;
    const cgroups = cgroupDirs(r.id);
    expect(keeper).not.toBe(process.pid);
    await until(async () => (await s.corral(['logs', 'kept'])).out === 'up', 'the first line');
    const wait = background(['wait', 'kept']);
    const follow = background(['logs', '-f', 'kept']);
    let followed = '';
    follow.child.stdout?.on('data', (d) => (followed += d));
    await new Promise((res) => setTimeout(res, 300));
    process.kill(keeper, 'SIGKILL');
    // The container went with its keeper (PR_SET_PDEATHSIG), at once.
    await until(async () => !alive(r.state.pid), 'the container to be killed with its keeper');
    expect(await wait.exited).toBe(0);
    expect(await follow.exited).toBe(0);
    expect(followed.trim()).toBe('up');
    expect(await status('kept')).toContain('Exited (137)');
    const after = await inspect('kept');
    expect(after.state.error).toMatch(/keeper \(pid \d+\) was killed/);
    // The next command (the inspect above) took the mount, runtime state and cgroups away.
    expect(leftovers(r.id, cgroups)).toEqual([]);
  });
});

describe('the keeper of an attached run is SIGKILLed', () => {
  it('the run ends with 137 and the reason is recorded; nothing is left', async () => {
    const run = background(['run', '--name', 'lost', 'busybox', 'sh', '-c', 'sleep 30; exit 4']);
    await until(async () => (await status('lost')).includes('Up'), 'lost to run');
    const r = await inspect('lost');
    const cgroups = cgroupDirs(r.id);
    process.kill(r.state.watcherPid, 'SIGKILL');
    expect(await run.exited).toBe(137);
    const after = await inspect('lost');
    expect(after.state.exitCode).toBe(137);
    expect(after.state.error).toMatch(/keeper was killed/);
    expect(leftovers(r.id, cgroups)).toEqual([]);
  });
});

describe("the keeper is out of the container's reach", () => {
  it('the program sees no keeper and no fd of the host; what it writes cannot drive its keeper (canary)', async () => {
    const canary = mkdtempSync(join(tmpdir(), 'corral-keeper-canary-'));
    try {
      // The keeper's own messages, forged on the program's stdout and stderr: they are log lines.
      const forged = [
        JSON.stringify({ type: 'own', root: canary, id: 'x'.repeat(64), detached: true }),
        JSON.stringify({ type: 'recorded' }),
        JSON.stringify({ type: 'exit', code: 0 }),
      ];
      const script = [
        // What PID 1 was given and passes on: a child's fds (none of the shell's own redirections).
        'sleep 3 & sleep 0.2; ls /proc/$!/fd > /fds; tr "\\n" " " < /fds; echo',
        'cat /proc/[0-9]*/comm | tr "\\n" " "; echo',
        ...forged.map((m) => `echo '${m}'; echo '${m}' >&2`),
        'exit 3',
      ].join('; ');
      await s.corral(['run', '-d', '--name', 'probe', 'busybox', 'sh', '-c', script]);
      await until(
        async () => (await status('probe')).includes('Exited (3)'),
        'the probe to end with its own code',
      );
      const logs = await s.corral(['logs', 'probe']);
      const lines = logs.out.split('\n');
      expect(logs.stderr.split('\n').filter(Boolean)).toEqual(forged);
      expect(lines[0].trim()).toBe('0 1 2'); // stdio only: no socket, pidfd or folder of the host
      expect(lines[1]).not.toMatch(/node/); // no process of ours (a keeper is a node) in its /proc
      expect(lines.slice(2)).toEqual(forged);
      expect(readdirSync(canary)).toEqual([]);
      expect((await inspect('probe')).state.error).toBeNull();
    } finally {
      rmSync(canary, { recursive: true, force: true });
    }
  });

  it("an attached run: the program has the CLI's stdio and nothing else", async () => {
    const r = await s.corral(['run', '--rm', 'busybox', 'sh', '-c', 'ls /proc/1/fd; true']);
    expect(r.out.split('\n')).toEqual(['0', '1', '2']);
  });
});

describe('--restart', () => {
  it('on-failure:N restarts a failing container exactly N times', async () => {
    await s.corral([
      'run',
      '-d',
      '--name',
      'flaky',
      '--restart',
      'on-failure:2',
      'busybox',
      'sh',
      '-c',
      'echo try; exit 4',
    ]);
    await until(async () => {
      const r = await inspect('flaky');
      return !r.state.restarting && r.state.status === 'exited' && r.restartCount === 2;
    }, 'two restarts, then the end');
    await new Promise((res) => setTimeout(res, 1000)); // no third one comes
    const r = await inspect('flaky');
    expect(r.restartCount).toBe(2);
    expect(r.state.exitCode).toBe(4);
    expect((await s.corral(['logs', 'flaky'])).out.split('\n')).toEqual(['try', 'try', 'try']);
    expect(await status('flaky')).toContain('Exited (4)');
  });

  it('always restarts after exit 0, shows Restarting in ps, and stop ends it', async () => {
    await s.corral(['run', '-d', '--name', 'again', '--restart', 'always', 'busybox', 'sh', '-c', 'exit 0']);
    await until(async () => (await inspect('again')).restartCount >= 2, 'two restarts');
    // The back-off doubles (100 ms, 200 ms, ... 1.6 s): ps catches it waiting.
    await until(
      async () => /Restarting \(0\) .* ago/.test(await status('again')),
      'ps to show Restarting (0)',
    );
    expect((await s.corral(['stop', 'again'])).status).toBe(0);
    const count = (await inspect('again')).restartCount;
    await new Promise((res) => setTimeout(res, 2000));
    const r = await inspect('again');
    expect(r.restartCount).toBe(count);
    expect(r.state.restarting).toBe(false);
    expect(await status('again')).toContain('Exited (0)');
  });

  it('unless-stopped is not restarted after stop, and is by a start', async () => {
    await s.corral(['run', '-d', '--name', 'svc', '--restart', 'unless-stopped', 'busybox', 'sleep', '60']);
    expect((await s.corral(['stop', '-t', '0', 'svc'])).status).toBe(0);
    await new Promise((res) => setTimeout(res, 1000));
    const r = await inspect('svc');
    expect(r.state.status).toBe('exited');
    expect(r.restartCount).toBe(0);
    expect((await s.corral(['start', 'svc'])).status).toBe(0);
    expect(await status('svc')).toContain('Up');
    await s.corral(['rm', '-f', 'svc']);
  });

  it('bad policies are refused with a clear error, and nothing is made', async () => {
    const before = readdirSync(join(s.root, 'containers')).length;
    const bad = await s.corral(['run', '-d', '--restart', 'sometimes', 'busybox', 'true']);
    expect(bad.status).toBe(125);
    expect(bad.stderr).toContain('invalid restart policy "sometimes"');
    const count = await s.corral(['run', '-d', '--restart', 'always:3', 'busybox', 'true']);
    expect(count.stderr).toContain('maximum retry count cannot be used with always');
    const rm = await s.corral(['run', '--rm', '--restart', 'always', 'busybox', 'true']);
    expect(rm.stderr).toContain('Conflicting options: --restart and --rm');
    expect(readdirSync(join(s.root, 'containers'))).toHaveLength(before);
  });
});
