import { existsSync, statSync, writeFileSync } from 'node:fs';
import { release } from 'node:os';
import { join } from 'node:path';
import { Cleanups, corralBin, exec, until } from '@corral/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { containerDirs, type Daemon, startDaemon } from './daemon.js';

// The docker CLI (28.x at /usr/local/bin, and Debian's 20.10 when present) against corrald on a
// private socket and data root, as a user runs it.
const c = new Cleanups();
let d: Daemon;

beforeAll(async () => {
  d = await startDaemon(c);
});
afterAll(() => c.run());

const must = (args: string[], input?: string) => d.must(args, { input });

describe('docker CLI 28 against corrald', () => {
  it('makes its socket 0660 root:root', () => {
    const s = statSync(d.socket);
    expect(s.isSocket()).toBe(true);
    expect(s.mode & 0o777).toBe(0o660);
    expect([s.uid, s.gid]).toEqual([0, 0]);
  });

  it('negotiates the API version and reports the server', async () => {
    const r = await must(['version', '--format', '{{.Server.APIVersion}} {{.Server.MinAPIVersion}}']);
    expect(r.out).toBe('1.47 1.24');
  });

  it('reports the engine in docker info: cgroup version, storage driver, kernel, data root', async () => {
    const r = await must([
      'info',
      '--format',
      '{{.CgroupVersion}}|{{.Driver}}|{{.KernelVersion}}|{{.DockerRootDir}}',
    ]);
    expect(r.out.split('|')).toEqual([expect.stringMatching(/^[12]$/), 'overlay', release(), d.root]);
  });

  it('runs --rm busybox echo hi, and the container is gone', async () => {
    const r = await must(['run', '--rm', 'busybox', 'echo', 'hi']);
    expect(r.stdout).toBe('hi\n');
    expect(containerDirs(d.root)).toEqual([]);
  });

  it('keeps stdout and stderr apart and gives the exit code', async () => {
    const r = await d.docker(['run', '--rm', 'busybox', 'sh', '-c', 'echo out; echo err >&2; exit 3']);
    expect([r.status, r.stdout, r.stderr]).toEqual([3, 'out\n', 'err\n']);
  });

  it('brings the output of a large run whole and in order, attached and through logs', async () => {
    // Many lines (written in batches), a line longer than one log entry, and stderr beside.
    const script = 'seq 1 100000; seq 1 3000 | sed s/^/e/ >&2; head -c 300000 /dev/zero | tr "\\0" x; echo';
    const r = await must(['run', '--name', 'big', 'busybox', 'sh', '-c', script]);
    const out = `${Array.from({ length: 100000 }, (_, i) => i + 1).join('\n')}\n${'x'.repeat(300000)}\n`;
    const err = `${Array.from({ length: 3000 }, (_, i) => `e${i + 1}`).join('\n')}\n`;
    expect(r.stdout.length).toBe(out.length);
    expect(r.stdout === out).toBe(true); // not toBe: a diff of 900 kB helps nobody
    expect(r.stderr === err).toBe(true);
    const logs = await must(['logs', 'big']);
    expect([logs.stdout === out, logs.stderr === err]).toEqual([true, true]);
    await must(['rm', 'big']);
  });

  it('passes stdin with -i and the client half-close is the EOF', async () => {
    const r = await must(['run', '--rm', '-i', 'busybox', 'sh', '-c', 'cat; echo done'], 'hello stdin\n');
    expect(r.stdout).toBe('hello stdin\ndone\n');
  });

  it('passes output and input that are not UTF-8 byte for byte: attach, logs, corral --host', async () => {
    // Every byte value, and a cut UTF-8 character at the end (a binary's output, a latin-1 file).
    const bytes = Buffer.concat([
      ...Array.from({ length: 300 }, (_, i) => Buffer.from([i & 0xff, 0xff, 0x0a, 0xc3])),
      Buffer.from([0xe2, 0x9c]),
    ]);
    const file = join(d.root, '..', 'bytes.bin');
    writeFileSync(file, bytes);
    const sha = (await exec('sh', ['-c', `sha256sum < ${file}`])).out.split(' ')[0];
    const host = { ...process.env, DOCKER_HOST: `unix://${d.socket}` };
    const hashOf = async (cmd: string) => {
      const r = await exec('bash', ['-c', `set -o pipefail; ${cmd} | sha256sum`], { env: host });
      expect(r.status, r.stderr).toBe(0);
      return r.out.split(' ')[0];
    };
    expect(await hashOf(`docker run -i --name bytes busybox cat < ${file}`)).toBe(sha);
    expect(await hashOf('docker logs bytes')).toBe(sha);
    const corral = `${process.execPath} -- ${corralBin} --host unix://${d.socket}`;
    expect(await hashOf(`${corral} logs bytes`)).toBe(sha);
    expect(await hashOf(`${corral} run --rm -i busybox cat < ${file}`)).toBe(sha);
    // Written inside, read out through the attach.
    const inside = await must([
      'run',
      '--rm',
      'busybox',
      'sh',
      '-c',
      'head -c 100000 /bin/busybox | sha256sum',
    ]);
    expect(await hashOf('docker run --rm busybox head -c 100000 /bin/busybox')).toBe(
      inside.out.split(' ')[0],
    );
    await must(['rm', 'bytes']);
  });

  it('runs -d; ps, logs -f, exec, top, stats, inspect, stop, wait, rm', async () => {
    const id = (
      await must([
        'run',
        '-d',
        '--name',
        'web',
        'busybox',
        'sh',
        '-c',
        'trap "exit 7" TERM; i=0; while true; do echo line $i; i=$((i+1)); sleep 0.2; done',
      ])
    ).out;
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    expect((await must(['ps', '--format', '{{.Names}}'])).out).toBe('web');
    await until(async () => (await must(['logs', 'web'])).stdout.includes('line 2'), 'three lines');
    const follow = d.docker(['logs', '-f', '--tail', '1', 'web']);
    const ex = await d.docker(['exec', 'web', 'sh', '-c', 'echo in-exec; exit 4']);
    expect([ex.status, ex.stdout]).toEqual([4, 'in-exec\n']);
    const top = await must(['top', 'web']);
    expect(top.stdout).toContain('while true');
    const stats = await must(['stats', '--no-stream', '--format', '{{.Name}} {{.PIDs}}', 'web']);
    expect(stats.out).toMatch(/^web \d+$/);
    const state = await must(['inspect', '-f', '{{.State.Status}} {{.Name}} {{.Config.Hostname}}', 'web']);
    expect(state.out).toBe(`running /web ${id.slice(0, 12)}`);
    await must(['stop', '-t', '5', 'web']);
    expect((await must(['wait', 'web'])).out).toBe('7');
    const followed = await follow; // ends when the container does
    expect(followed.status).toBe(0);
    expect(followed.stdout.split('\n').filter(Boolean).length).toBeGreaterThan(1);
    expect(
      (await must(['ps', '-a', '--filter', 'status=exited', '--format', '{{.Names}} {{.Status}}'])).out,
    ).toMatch(/^web Exited \(7\)/);
    await must(['rm', 'web']);
    expect((await must(['ps', '-aq'])).out).toBe('');
  });

  it('runs -t with a terminal (raw stream) and exec -it under a pty from the test', async () => {
    const t = await must(['run', '--rm', '-t', 'busybox', 'sh', '-c', 'tty']);
    expect(t.stdout).toBe('/dev/pts/0\r\n');
    await must(['run', '-d', '--name', 'term', '--network', 'none', 'busybox', 'sleep', '60']);
    // script(1) gives the docker CLI a terminal, as a user's shell would.
    const r = await exec(
      'script',
      ['-qec', `docker exec -it term sh -c 'tty; echo $TERM; exit 6'`, '/dev/null'],
      {
        env: { ...process.env, DOCKER_HOST: `unix://${d.socket}` },
      },
    );
    // (script's own end of input may echo as ^@ in between.)
    expect(r.stdout).toMatch(/\/dev\/pts\/0\r\n.*xterm\r\n/s);
    expect(r.status).toBe(6);
    await must(['rm', '-f', 'term']);
  });

  it('gives a container no way to the API socket: none in its filesystem, none among its fds', async () => {
    const r = await must(
      [
        'run',
        '--rm',
        '-i',
        'busybox',
        'sh',
        '-c',
        "find / -xdev -type s; ls -l /proc/1/fd | grep socket | grep -v ' [012] -> '; true",
      ],
      '',
    );
    // Only stdin, stdout and stderr may be sockets: the program's own socketpairs.
    expect(r.out).toBe('');
    expect(r.stdout).not.toContain('corrald.sock');
  });

  it('pauses, renames, diffs, commits; history and system df', async () => {
    await must(['run', '-d', '--name', 'c1', '--network', 'none', 'busybox', 'sleep', '60']);
    await must(['pause', 'c1']);
    expect((await must(['inspect', '-f', '{{.State.Status}}', 'c1'])).out).toBe('paused');
    await must(['unpause', 'c1']);
    await must(['rename', 'c1', 'c2']);
    await must(['exec', 'c2', 'sh', '-c', 'echo data > /newfile']);
    expect((await must(['diff', 'c2'])).out).toContain('A /newfile');
    const id = (await must(['commit', 'c2', 'mine:v1'])).out;
    expect(id).toMatch(/^sha256:[0-9a-f]{64}$/);
    const r = await must(['run', '--rm', '--network', 'none', 'mine:v1', 'cat', '/newfile']);
    expect(r.out).toBe('data');
    expect((await must(['history', '--format', '{{.CreatedBy}}', 'mine:v1'])).out).toContain('sleep 60');
    expect((await must(['system', 'df', '--format', '{{.Type}} {{.TotalCount}}'])).out).toContain('Images 2');
    await must(['rm', '-f', 'c2']);
    await must(['rmi', 'mine:v1']);
  });

  it('takes a seccomp profile the CLI sends as JSON', async () => {
    const file = join(d.execRoot, '..', 'deny-mkdir.json');
    writeFileSync(
      file,
      JSON.stringify({
        defaultAction: 'SCMP_ACT_ALLOW',
        syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO' }],
      }),
    );
    const r = await d.docker([
      'run',
      '--rm',
      '--network',
      'none',
      '--security-opt',
      `seccomp=${file}`,
      'busybox',
      'mkdir',
      '/x',
    ]);
    expect([r.status, r.stderr]).toEqual([1, expect.stringContaining('Operation not permitted')]);
  });

  it('saves, removes, loads and lists images', async () => {
    const tar = join(d.root, '..', 'bb.tar');
    await must(['save', '-o', tar, 'busybox']);
    expect(statSync(tar).size).toBeGreaterThan(1e6);
    await must(['rmi', 'busybox']);
    expect((await must(['images', '-q'])).out).toBe('');
    expect((await must(['load', '-i', tar])).out).toContain('Loaded image: busybox:latest');
    expect((await must(['images', '--format', '{{.Repository}}:{{.Tag}}'])).out).toBe('busybox:latest');
  });

  it('streams events', async () => {
    const since = Math.floor(Date.now() / 1000) - 1;
    await must(['run', '--rm', '--name', 'ev', 'busybox', 'true']);
    const r = await must([
      'events',
      '--since',
      String(since),
      '--until',
      String(Math.floor(Date.now() / 1000) + 1),
      '--filter',
      'container=ev',
      '--format',
      '{{.Action}}',
    ]);
    expect(r.out.split('\n')).toEqual(['create', 'start', 'die', 'destroy']);
  });

  it('refuses a field it does not do with a 400 naming the field, and makes nothing', async () => {
    const r = await d.docker(['run', '--rm', '--link', 'web:web', 'busybox', 'true']);
    expect(r.status).toBe(125);
    expect(r.stderr).toContain('HostConfig.Links is not supported');
    expect(containerDirs(d.root)).toEqual([]);
  });

  it("answers an unknown container with Docker's 404 message", async () => {
    const r = await d.docker(['rm', 'nope']);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('Error response from daemon: No such container: nope');
  });
});

describe.skipIf(!existsSync('/usr/bin/docker'))('Debian docker CLI 20.10 (API 1.41) against corrald', () => {
  it('runs --rm busybox echo, and -d then ps, logs, rm -f', async () => {
    const r = await d.docker(['run', '--rm', 'busybox', 'echo', 'from 20.10'], { bin: '/usr/bin/docker' });
    expect([r.status, r.stdout]).toEqual([0, 'from 20.10\n']);
    const id = (
      await d.docker(['run', '-d', 'busybox', 'sh', '-c', 'echo up; sleep 30'], { bin: '/usr/bin/docker' })
    ).out;
    await until(
      async () => (await d.docker(['logs', id], { bin: '/usr/bin/docker' })).stdout === 'up\n',
      'logs',
    );
    expect((await d.docker(['ps', '-q', '--no-trunc'], { bin: '/usr/bin/docker' })).out).toBe(id);
    expect((await d.docker(['rm', '-f', id], { bin: '/usr/bin/docker' })).status).toBe(0);
  });
});
