import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MS, mount } from '@corral/sys';
import { afterAll, describe, expect, it } from 'vitest';
import { Sandbox, until } from './helpers.js';

const s = new Sandbox();
afterAll(() => s.teardown());

const logLines = async (name: string) =>
  (await s.corral(['logs', name])).stdout.split('\n').filter(Boolean).length;

describe('pause and unpause', () => {
  it('freezes a counting loop and lets it go on after unpause', async () => {
    await s.corral([
      'run',
      '-d',
      '--name',
      'counter',
      'busybox',
      'sh',
      '-c',
      'i=0; while :; do i=$((i+1)); echo $i; sleep 0.05; done',
    ]);
    await until(async () => (await logLines('counter')) > 3, 'the loop to count');
    expect((await s.corral(['pause', 'counter'])).status).toBe(0);
    expect((await s.corral(['ps'])).out).toMatch(/Up .*\(Paused\)\s+counter/);
    const frozenAt = await logLines('counter');
    await new Promise((r) => setTimeout(r, 400));
    expect(await logLines('counter')).toBe(frozenAt);
    expect((await s.corral(['pause', 'counter'])).stderr).toContain('already paused');
    expect((await s.corral(['unpause', 'counter'])).status).toBe(0);
    await until(async () => (await logLines('counter')) > frozenAt, 'the loop to go on');
    await s.corral(['rm', '-f', 'counter']);
  });

  it('stops a paused container (the signal is delivered after a thaw)', async () => {
    await s.corral(['run', '-d', '--name', 'frozen', 'busybox', 'sleep', '100']);
    await s.corral(['pause', 'frozen']);
    expect((await s.corral(['stop', '-t', '1', 'frozen'])).status).toBe(0);
    expect((await s.corral(['ps', '-a'])).out).toMatch(/Exited \(137\).*frozen/);
    await s.corral(['rm', 'frozen']);
  });
});

describe('storage leftovers and drivers', () => {
  it('cleans a mount left by a crash between mount and record', async () => {
    const id = (await s.corral(['create', '--name', 'crashed', 'busybox', 'true'])).out;
    // What a CLI killed right after mounting would leave: something mounted on the rootfs.
    const rootfs = join(s.root, 'containers', id, 'rootfs');
    const lowers = ['crash-a', 'crash-b'].map((d) => join(s.root, d));
    for (const d of lowers) mkdirSync(d);
    mount('overlay', rootfs, 'overlay', MS.RDONLY, `lowerdir=${lowers.join(':')}`);
    expect(s.mounts().length).toBe(1);
    // The next start cleans it and runs; rm leaves nothing.
    expect((await s.corral(['start', 'crashed'])).status).toBe(0);
    await until(
      async () => (await s.corral(['ps', '-a'])).out.includes('Exited (0)'),
      'the container to run',
    );
    await s.corral(['rm', 'crashed']);
    expect(s.mounts()).toEqual([]);
    expect(readdirSync(join(s.root, 'containers'))).not.toContain(id);
  });

  it('refuses an unknown driver clearly (the fuse driver has tests of its own)', async () => {
    const other = await s.corral(['run', '--rm', '--storage-driver', 'zfs', 'busybox', 'true']);
    expect(other.status).toBe(125);
    expect(other.stderr).toContain('zfs');
    expect((await s.corral(['ps', '-aq'])).out).toBe('');
    expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(s.root);
  });
});

describe('corral exec', () => {
  it('runs a program inside a running container: its PID namespace, cgroup, hostname and root', async () => {
    const id = (
      await s.corral([
        'run',
        '-d',
        '--name',
        'host1',
        '--hostname',
        'box',
        '-m',
        '64m',
        'busybox',
        'sh',
        '-c',
        'echo inside > /marker; sleep 100',
      ])
    ).out;
    await until(
      async () => (await s.corral(['exec', 'host1', 'cat', '/marker'])).out === 'inside',
      'the container to start',
    );
    const r = await s.corral([
      'exec',
      'host1',
      'sh',
      '-c',
      'echo $$; hostname; ps -o pid,comm | grep -c sleep; grep memory /proc/self/cgroup',
    ]);
    const [pid, hostname, sleeps, cgroup] = r.out.split('\n');
    expect(Number(pid)).toBeGreaterThan(1);
    expect(hostname).toBe('box');
    expect(sleeps).toBe('1');
    expect(cgroup).toContain(`corral-${id}`);
  });

  it('takes env, workdir and user, and returns the exit code', async () => {
    const r = await s.corral([
      'exec',
      '-e',
      'X=1',
      '-w',
      '/tmp',
      '-u',
      'nobody',
      'host1',
      'sh',
      '-c',
      'echo $X $(pwd) $(id -u); exit 4',
    ]);
    expect(r.out).toBe('1 /tmp 65534');
    expect(r.status).toBe(4);
    expect((await s.corral(['exec', 'host1', 'no-such-program'])).status).toBe(127);
    expect((await s.corral(['exec', '-i', 'host1', 'cat'], 'piped in')).out).toBe('piped in');
  });

  it('refuses a stopped or paused container', async () => {
    await s.corral(['pause', 'host1']);
    const paused = await s.corral(['exec', 'host1', 'true']);
    expect(paused.status).toBe(1);
    expect(paused.stderr).toContain('is paused');
    await s.corral(['unpause', 'host1']);
    await s.corral(['stop', '-t', '0', 'host1']);
    const stopped = await s.corral(['exec', 'host1', 'true']);
    expect(stopped.status).toBe(1);
    expect(stopped.stderr).toContain('is not running');
    await s.corral(['rm', 'host1']);
  });
});

describe('wait, restart, rename', () => {
  it('waits for the exit code, restarts a container and renames it', async () => {
    await s.corral(['run', '-d', '--name', 'quick', 'busybox', 'sh', '-c', 'sleep 2; exit 6']);
    expect((await s.corral(['wait', 'quick'])).out).toBe('6');
    expect((await s.corral(['restart', 'quick'])).status).toBe(0);
    expect((await s.corral(['ps'])).out).toContain('quick');
    expect((await s.corral(['wait', 'quick'])).out).toBe('6');
    expect((await s.corral(['rename', 'quick', 'renamed'])).status).toBe(0);
    expect((await s.corral(['ps', '-a', '--format', 'json'])).out).toContain('"name":"renamed"');
    await s.corral(['run', '-d', '--name', 'other', 'busybox', 'true']);
    const taken = await s.corral(['rename', 'renamed', 'other']);
    expect(taken.status).toBe(125);
    expect((await s.corral(['inspect', 'renamed'])).status).toBe(0);
    await s.corral(['rm', '-f', 'renamed', 'other']);
  });
});
