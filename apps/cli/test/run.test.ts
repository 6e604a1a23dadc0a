import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { busyboxRootfs } from '@corral/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { alive, Sandbox, until } from './helpers.js';

const s = new Sandbox();
let rootfs: string;
/** `corral run --rm --rootfs ROOTFS sh -c SCRIPT`. */
const inRootfs = (script: string) => s.corral(['run', '--rm', '--rootfs', rootfs, 'sh', '-c', script]);

beforeAll(async () => {
  // A rootfs folder of our own, from Debian's busybox-static.
  rootfs = busyboxRootfs(join(s.root, 'my-rootfs'), 'etc', 'tmp');
  writeFileSync(
    join(rootfs, 'etc/passwd'),
    'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n',
  );
  writeFileSync(join(rootfs, 'marker'), 'original');
});
afterAll(() => s.teardown());

describe('corral run --rootfs', async () => {
  it('runs the command as PID 1', async () => {
    const r = await inRootfs('echo $$');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.out).toBe('1');
  });

  it('shows only the container processes to ps inside', async () => {
    const r = await inRootfs('sleep 5 & sleep 0.3; ps -o pid,comm; kill %1');
    const rows = r.out
      .split('\n')
      .slice(1)
      .map((l) => l.trim().split(/\s+/));
    expect(rows.map((x) => x[1]).sort()).toEqual(['ps', 'sh', 'sleep']);
    expect(rows.find((x) => x[1] === 'sh')![0]).toBe('1');
  });

  it('never writes to the rootfs folder: changes go to the container layer', async () => {
    const before = readdirSync(rootfs).sort();
    const r = await inRootfs('echo changed > /marker; touch /new; rm /bin/ls; cat /marker');
    expect(r.out).toBe('changed');
    expect(readdirSync(rootfs).sort()).toEqual(before);
    expect(existsSync(join(rootfs, 'bin/ls'))).toBe(true);
    expect(existsSync(join(rootfs, 'new'))).toBe(false);
  });

  it('passes env, workdir, hostname and user', async () => {
    const r = await s.corral([
      'run',
      '--rm',
      '-e',
      'GREETING=hi',
      '-w',
      '/work/dir',
      '--hostname',
      'box1',
      '-u',
      '65534',
      '--rootfs',
      rootfs,
      'sh',
      '-c',
      'echo $GREETING $(pwd) $(hostname) $(id -u) $HOSTNAME',
    ]);
    expect(r.out).toBe('hi /work/dir box1 65534 box1');
  });

  it('gives the container /dev, /dev/pts, /dev/shm, a read-only /sys and masked /proc files', async () => {
    const r = await inRootfs(
      'ls /dev | tr "\\n" " "; echo; test -c /dev/null && test -d /dev/pts && test -d /dev/shm && echo devs; touch /sys/x 2>/dev/null || echo sys-ro; echo 1 > /proc/sys/kernel/hostname 2>/dev/null || echo procsys-ro; wc -c < /proc/keys',
    );
    const [devs, ...rest] = r.out.split('\n');
    for (const d of [
      'null',
      'zero',
      'full',
      'random',
      'urandom',
      'tty',
      'pts',
      'shm',
      'fd',
      'stdin',
      'stdout',
      'stderr',
      'ptmx',
    ])
      expect(devs.split(' ')).toContain(d);
    expect(rest).toEqual(['devs', 'sys-ro', 'procsys-ro', '0']);
  });

  it('passes stdin through with -i', async () => {
    expect((await s.corral(['run', '--rm', '-i', '--rootfs', rootfs, 'cat'], 'from stdin')).out).toBe(
      'from stdin',
    );
  });
});

describe('exit codes', async () => {
  it("returns the program's exit code, or 128 + signal", async () => {
    expect((await inRootfs('exit 7')).status).toBe(7);
    // PID 1 cannot be killed from inside its namespace: under corral init, the program can.
    expect((await inRootfs('kill -9 $$')).status).toBe(0);
    expect(
      (await s.corral(['run', '--rm', '--init', '--rootfs', rootfs, 'sh', '-c', 'kill -9 $$'])).status,
    ).toBe(137);
  });

  // The init's exit used to overtake its last message (why exec failed) when runs raced:
  // some said "exited with code 126 during setup", some threw ESRCH from a kill and hung.
  it('side by side, every run of a program that cannot run says why, with 126', async () => {
    const runs = await Promise.all(
      Array.from({ length: 8 }, () =>
        s.corral(['run', '--rm', '--network', 'none', '--rootfs', rootfs, '/marker']),
      ),
    );
    for (const r of runs) {
      expect(r.stderr).toBe('corral: exec: "/marker": permission denied\n');
      expect(r.status).toBe(126);
    }
  });

  it('127 for a missing command, 126 for one that cannot run, 125 for a missing rootfs', async () => {
    const missing = await s.corral(['run', '--rm', '--rootfs', rootfs, 'no-such-command']);
    expect(missing.status).toBe(127);
    expect(missing.stderr).toMatch(
      /^corral: exec: "no-such-command": executable file not found in \$PATH\n$/,
    );
    const notExec = await s.corral(['run', '--rm', '--rootfs', rootfs, '/marker']);
    expect(notExec.status).toBe(126);
    expect(notExec.stderr).toContain('permission denied');
    const noRoot = await s.corral(['run', '--rm', '--rootfs', join(s.root, 'nope'), 'sh']);
    expect(noRoot.status).toBe(125);
    expect(noRoot.stderr).toContain('does not exist');
    // None of them left a container or a mount behind.
    expect((await s.corral(['ps', '-aq'])).out).toBe('');
    expect(s.mounts()).toEqual([]);
  });

  it('125 for bad flags', async () => {
    const r = await s.corral(['run', '--no-such-flag', 'busybox']);
    expect(r.status).toBe(125);
    expect(r.stderr).toContain('unknown flag: --no-such-flag');
  });
});

describe('detached containers', async () => {
  it('prints the full id, keeps logs, and shows Exited (3) after the end', async () => {
    const r = await s.corral([
      'run',
      '-d',
      '--name',
      'three',
      '--rootfs',
      rootfs,
      'sh',
      '-c',
      'echo out; echo err >&2; exit 3',
    ]);
    expect(r.status).toBe(0);
    expect(r.out).toMatch(/^[0-9a-f]{64}$/);
    await until(
      async () => (await s.corral(['ps', '-a'])).out.includes('Exited (3)'),
      'the exit to be recorded',
    );
    const logs = await s.corral(['logs', 'three']);
    expect(logs.stdout).toBe('out\n');
    expect(logs.stderr).toBe('err\n');
    expect((await s.corral(['logs', r.out.slice(0, 8)])).stdout).toBe('out\n');
    expect((await s.corral(['inspect', 'three'])).out).toContain('"exitCode": 3');
    expect((await s.corral(['rm', 'three'])).status).toBe(0);
  });

  it('follows logs until the container ends', async () => {
    await s.corral([
      'run',
      '-d',
      '--name',
      'counter',
      '--rootfs',
      rootfs,
      'sh',
      '-c',
      'for i in 1 2 3; do echo $i; sleep 0.2; done',
    ]);
    const r = await s.corral(['logs', '-f', 'counter']);
    expect(r.stdout).toBe('1\n2\n3\n');
    expect((await s.corral(['logs', '--tail', '1', 'counter'])).stdout).toBe('3\n');
    await s.corral(['rm', 'counter']);
  });

  it('shows the tree with host and container PIDs in top', async () => {
    await s.corral([
      'run',
      '-d',
      '--name',
      'tree',
      '--rootfs',
      rootfs,
      'sh',
      '-c',
      'sleep 100 & sleep 100 & wait',
    ]);
    const lines = await s.topUntil(
      'tree',
      (l) => l.filter((x) => x.endsWith(') sleep 100')).length === 2,
      'both sleepers',
    );
    expect(lines[0]).toMatch(/^\d+ \(1\) sh -c sleep 100 & sleep 100 & wait$/);
    expect(lines[1]).toMatch(/^├─ \d+ \(\d+\) sleep 100$/);
    expect(lines[2]).toMatch(/^└─ \d+ \(\d+\) sleep 100$/);
    expect((await s.corral(['rm', '-f', 'tree'])).status).toBe(0);
  });

  it('stop sends SIGTERM, then SIGKILL after the timeout', async () => {
    // sh as PID 1 has no SIGTERM handler, so only SIGKILL ends it.
    await s.corral(['run', '-d', '--name', 'stubborn', '--rootfs', rootfs, 'sleep', '100']);
    expect((await s.corral(['stop', '-t', '1', 'stubborn'])).status).toBe(0);
    expect((await s.corral(['ps', '-a'])).out).toMatch(/Exited \(137\).*stubborn/);
    // A program that handles SIGTERM exits with its own code.
    await s.corral([
      'run',
      '-d',
      '--name',
      'polite',
      '--rootfs',
      rootfs,
      'sh',
      '-c',
      'trap "exit 0" TERM; while :; do sleep 0.1; done',
    ]);
    expect((await s.corral(['stop', 'polite'])).status).toBe(0);
    expect((await s.corral(['ps', '-a'])).out).toMatch(/Exited \(0\).*polite/);
    await s.corral(['rm', 'stubborn', 'polite']);
  });

  it('kill with a signal, and killing PID 1 ends every process inside', async () => {
    await s.corral([
      'run',
      '-d',
      '--name',
      'family',
      '--rootfs',
      rootfs,
      'sh',
      '-c',
      'for i in 1 2 3; do setsid sleep 100 & done; trap "exit 9" USR1; while :; do sleep 0.1; done',
    ]);
    const lines = await s.topUntil('family', (l) => l.length >= 4, 'the sleepers');
    const pids = lines.map((l) => Number(/(\d+) \(/.exec(l)![1]));
    expect((await s.corral(['kill', '-s', 'USR1', 'family'])).status).toBe(0);
    await until(async () => pids.every((p) => !alive(p)), 'every process of the container to end');
    await until(async () => (await s.corral(['ps', '-a'])).out.includes('Exited (9)'), 'the exit code');
    await s.corral(['rm', 'family']);
  });

  it('runs corral init as PID 1 with --init', async () => {
    const r = await s.corral([
      'run',
      '--rm',
      '--init',
      '--rootfs',
      rootfs,
      'sh',
      '-c',
      'echo $$; tr "\\0" " " < /proc/1/cmdline',
    ]);
    const [pid, init] = r.out.split('\n');
    expect(Number(pid)).toBeGreaterThan(1);
    expect(init).toMatch(/^corral-init/);
  });

  it('refuses a taken name, an unknown container and an unknown signal', async () => {
    const first = await s.corral(['run', '-d', '--name', 'taken', '--rootfs', rootfs, 'sleep', '100']);
    expect(first.status, first.stderr).toBe(0);
    const before = (await s.corral(['ps', '-aq'])).out;
    const dup = await s.corral(['run', '-d', '--name', 'taken', '--rootfs', rootfs, 'true']);
    expect(dup.status).toBe(125);
    expect(dup.stderr).toContain('The container name "/taken" is already in use');
    expect((await s.corral(['ps', '-aq'])).out).toBe(before);
    const unknown = await s.corral(['logs', 'no-such-container']);
    expect(unknown.status).toBe(1);
    expect(unknown.stderr).toBe('corral: No such container: no-such-container\n');
    expect((await s.corral(['stop', 'no-such-container'])).status).toBe(1);
    const sig = await s.corral(['kill', '-s', 'SIGNOPE', 'taken']);
    expect(sig.status).toBe(1);
    expect(sig.stderr).toContain('invalid signal: SIGNOPE');
    expect((await s.corral(['rm', 'taken'])).status).toBe(1);
    expect((await s.corral(['rm', '-f', 'taken'])).status).toBe(0);
    expect((await s.corral(['ps', '-aq'])).out).toBe('');
  });

  it('removes a detached --rm container when it ends', async () => {
    const id = (await s.corral(['run', '-d', '--rm', '--rootfs', rootfs, 'true'])).out;
    await until(async () => !existsSync(join(s.root, 'containers', id)), 'the container to be removed');
    expect(s.mounts()).toEqual([]);
  });
});

describe('corral diff', async () => {
  it('lists what the container added, changed and deleted', async () => {
    await s.corral([
      'run',
      '--name',
      'changer',
      '--rootfs',
      rootfs,
      'sh',
      '-c',
      'echo x > /marker; mkdir -p /data; touch /data/f; rm /bin/vi',
    ]);
    const lines = (await s.corral(['diff', 'changer'])).out.split('\n');
    expect(lines).toContain('C /marker');
    expect(lines).toContain('A /data');
    expect(lines).toContain('A /data/f');
    expect(lines).toContain('D /bin/vi');
    expect(statSync(join(rootfs, 'bin/vi'), { throwIfNoEntry: false })).toBeDefined();
    await s.corral(['rm', 'changer']);
  });
});
