// `corral --host unix:///PATH` (remote mode) against a private corrald: the same commands
// through the daemon and daemonless on the daemon's own data root print the same and exit the
// same. The daemon is started as corrald's tests start it (apps/daemon/test/daemon.ts).
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Cleanups, corralBin, exec, freePort, type Result, runCorral, until } from '@corral/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { containerDirs, type Daemon, startDaemon } from '../../daemon/test/daemon.js';
import { onTerminal } from './helpers.js';

const c = new Cleanups();
let d: Daemon;
let host: string;

beforeAll(async () => {
  d = await startDaemon(c);
  host = `unix://${d.socket}`;
});
afterAll(() => c.run());

/** corral through corrald. */
const remote = (args: string[], input?: string, env: NodeJS.ProcessEnv = process.env) =>
  exec(process.execPath, ['--', corralBin, '--host', host, ...args], { input, env });
/** corral daemonless, on corrald's data root. */
const local = (args: string[], input?: string) => runCorral(d.root, args, { input });

const mustRemote = async (args: string[], input?: string) => {
  const r = await remote(args, input);
  if (r.status !== 0)
    throw new Error(
      `corral --host ${args.join(' ')} exited ${r.status}: ${r.stderr}\n${d.log().slice(-2000)}`,
    );
  return r;
};

/** What a comparison looks at: exit code and both streams. */
const seen = (r: Result) => ({ status: r.status, stdout: r.stdout, stderr: r.stderr });

describe('corral --host: runs', () => {
  it('runs --rm busybox echo hi as daemonless does, and the container is gone', async () => {
    const r = await remote(['run', '--rm', 'busybox', 'echo', 'hi']);
    expect(seen(r)).toEqual({ status: 0, stdout: 'hi\n', stderr: '' });
    expect(seen(r)).toEqual(seen(await local(['run', '--rm', 'busybox', 'echo', 'hi'])));
    expect(containerDirs(d.root)).toEqual([]);
  });

  it("passes the program's exit code on, stdout and stderr apart", async () => {
    const args = ['run', '--rm', 'busybox', 'sh', '-c', 'echo out; echo err >&2; exit 3'];
    const r = await remote(args);
    expect(seen(r)).toEqual({ status: 3, stdout: 'out\n', stderr: 'err\n' });
    expect(seen(r)).toEqual(seen(await local(args)));
  });

  it('gives -i its stdin, and the end of the input is the EOF', async () => {
    const args = ['run', '--rm', '-i', 'busybox', 'sh', '-c', 'cat; echo done'];
    const r = await remote(args, 'hello stdin\n');
    expect(seen(r)).toEqual({ status: 0, stdout: 'hello stdin\ndone\n', stderr: '' });
  });

  it('passes -e, --name, -v and -w to the container', async () => {
    const dir = c.tempDir('remote-bind');
    writeFileSync(join(dir, 'f'), 'from the host\n');
    const r = await mustRemote([
      'run',
      '--rm',
      '--name',
      'named',
      '-e',
      'A=1',
      '-v',
      `${dir}:/data`,
      '-w',
      '/data',
      'busybox',
      'sh',
      '-c',
      'echo $A; cat f; pwd; cat /etc/hostname >/dev/null; echo made > out',
    ]);
    expect(r.stdout).toBe('1\nfrom the host\n/data\n');
    expect(readFileSync(join(dir, 'out'), 'utf8')).toBe('made\n');
  });

  it('gives -t a terminal and passes the exit code of an -it shell', async () => {
    const t = await onTerminal(['--host', host], ['run', '--rm', '-t', 'busybox', 'sh', '-c', 'tty; exit 4']);
    expect(t.out).toContain('/dev/pts/0');
    expect(t.status).toBe(4);
    const it2 = await onTerminal(
      ['--host', host],
      ['run', '--rm', '-it', 'busybox', 'sh'],
      'echo answer=$((6*7))\nexit 5\n',
    );
    expect(it2.out).toContain('answer=42');
    expect(it2.status).toBe(5);
  });

  it('runs -d, then logs, exec, stop and rm as daemonless does', async () => {
    const id = (
      await mustRemote([
        'run',
        '-d',
        '--name',
        'web',
        'busybox',
        'sh',
        '-c',
        'echo up; echo oops >&2; exec sleep 100',
      ])
    ).out;
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    await until(async () => (await remote(['logs', 'web'])).stderr === 'oops\n', 'the log');
    const logs = await remote(['logs', 'web']);
    expect(seen(logs)).toEqual({ status: 0, stdout: 'up\n', stderr: 'oops\n' });
    expect(seen(logs)).toEqual(seen(await local(['logs', 'web'])));
    // Timestamps are the log's own: the same lines both ways.
    expect((await remote(['logs', '-t', 'web'])).stdout).toBe((await local(['logs', '-t', 'web'])).stdout);

    const ex = ['exec', 'web', 'sh', '-c', 'echo in-$((6*7)); echo e >&2; exit 7'];
    const r = await remote(ex);
    expect(seen(r)).toEqual({ status: 7, stdout: 'in-42\n', stderr: 'e\n' });
    expect(seen(r)).toEqual(seen(await local(ex)));
    expect((await remote(['exec', '-i', 'web', 'cat'], 'piped\n')).stdout).toBe('piped\n');
    const missing = ['exec', 'web', 'no-such-program'];
    const m = await remote(missing);
    expect(m.status).toBe(127);
    expect(seen(m)).toEqual(seen(await local(missing)));

    expect(seen(await remote(['stop', '-t', '1', 'web']))).toEqual({
      status: 0,
      stdout: 'web\n',
      stderr: '',
    });
    expect((await remote(['wait', 'web'])).out).toBe((await local(['wait', 'web'])).out);
    expect(seen(await remote(['rm', 'web']))).toEqual({ status: 0, stdout: 'web\n', stderr: '' });
    expect(containerDirs(d.root)).not.toContain(id);
  });

  it('follows a log with logs -f until the container ends', async () => {
    await mustRemote([
      'run',
      '-d',
      '--name',
      'talker',
      'busybox',
      'sh',
      '-c',
      'for i in 1 2 3; do echo line $i; sleep 0.5; done',
    ]);
    const r = await mustRemote(['logs', '-f', 'talker']);
    expect(r.stdout).toBe('line 1\nline 2\nline 3\n');
    expect(seen(await remote(['logs', '--tail', '1', 'talker']))).toEqual(
      seen(await local(['logs', '--tail', '1', 'talker'])),
    );
    await mustRemote(['rm', 'talker']);
  });

  it('passes a signal it gets on to the program of an attached run', async () => {
    const child = spawn(
      process.execPath,
      [
        '--',
        corralBin,
        '--host',
        host,
        'run',
        '--rm',
        '--name',
        'trapper',
        'busybox',
        'sh',
        '-c',
        'trap "exit 42" TERM; echo ready; sleep 100 & wait',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    child.stdout.on('data', (x) => (out += x));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    await until(async () => out.includes('ready'), 'the program to run');
    child.kill('SIGTERM');
    expect(await exited).toBe(42);
  });

  it('runs exec -it under a terminal', async () => {
    await mustRemote(['run', '-d', '--name', 'shell', 'busybox', 'sleep', '100']);
    const t = await onTerminal(
      ['--host', host],
      ['exec', '-it', 'shell', 'sh'],
      'echo inside-$((6*7))\nexit 6\n',
    );
    expect(t.out).toContain('inside-42');
    expect(t.status).toBe(6);
    await mustRemote(['rm', '-f', 'shell']);
  });
});

describe('corral --host: create flags', () => {
  it('makes the same container record as daemonless from the same flags', async () => {
    // Every flag goes through Docker's create body and corrald's reading of it, and back.
    const flags = [
      ...['-e', 'A=1', '-w', '/tmp', '-u', '1000', '-h', 'myhost', '--label', 'a=b', '-t', '--init'],
      ...['-m', '64m', '--memory-swap', '128m', '--cpus', '0.5', '--cpu-shares', '512', '--pids-limit', '50'],
      ...['-p', '127.0.0.1:8080:80', '-p', '9090/udp', '--dns', '1.1.1.1', '--dns-search', 'example.com'],
      ...[
        '--add-host',
        'h:1.2.3.4',
        '--tmpfs',
        '/run:size=1m',
        '-v',
        'remotevol:/data',
        '-v',
        '/tmp:/host:ro',
      ],
      ...['--mount', 'type=tmpfs,target=/t2', '--restart', 'on-failure:3', '--stop-signal', 'SIGINT'],
      ...['--stop-timeout', '5', '--cap-add', 'NET_ADMIN', '--cap-drop', 'CHOWN', '--read-only'],
      ...['--ulimit', 'nofile=100:200', '--shm-size', '32m', '--sysctl', 'kernel.msgmax=1000'],
      ...['--health-cmd', 'true', '--health-interval', '5s', '--security-opt', 'no-new-privileges'],
      ...['--oom-score-adj', '100', '--log-opt', 'max-size=1m', '--entrypoint', 'sh'],
    ];
    const made = await mustRemote(['create', '--name', 'flagged', ...flags, 'busybox', '-c', 'true']);
    const ours = (await local(['create', '--name', 'flagged-local', ...flags, 'busybox', '-c', 'true'])).out;
    // The same record but for what names this one container.
    const record = async (ref: string, id: string) =>
      JSON.parse(
        (await local(['inspect', ref])).stdout.replaceAll(id, 'ID').replace(/"flagged(-local)?"/, '"N"'),
      ).map((r: Record<string, unknown>) => ({ ...r, created: 'T' }));
    expect(await record('flagged', made.out)).toEqual(await record('flagged-local', ours));
    await mustRemote(['rm', 'flagged', 'flagged-local']);
    await mustRemote(['volume', 'rm', 'remotevol']);
  });
});

describe('corral --host: listings and inspection print what daemonless prints', () => {
  beforeAll(async () => {
    await mustRemote(['run', '-d', '--name', 'lister', '--label', 'k=v', 'busybox', 'sleep', '100']);
    await mustRemote(['create', '--name', 'idle', 'busybox', 'true']);
  });

  const same = async (args: string[]) => {
    const r = await remote(args);
    expect(seen(r), `corral ${args.join(' ')}`).toEqual(seen(await local(args)));
    return r;
  };

  it('ps with -a, -q, --format and filters', async () => {
    const fmt = '{{.Names}}|{{.Image}}|{{.Command}}|{{.State}}|{{.Labels}}';
    expect((await same(['ps', '--format', fmt])).stdout).toBe('lister|busybox|"sleep 100"|running|k=v\n');
    expect((await same(['ps', '-a', '--format', fmt])).stdout.split('\n')).toHaveLength(3);
    await same(['ps', '-q']);
    await same(['ps', '-a', '-q', '--no-trunc']);
    await same(['ps', '-a', '--format', 'table {{.Names}}\t{{.Image}}\t{{.Ports}}']);
    // The default table: every column but the times (they move between the two commands).
    // The times and the columns' padding, which follows the times' widths.
    const time = /(Up )?(Less than a second|\d+ seconds?|About a minute)( ago)?/g;
    const cut = (r: Result) => r.stdout.replace(time, 'T').replace(/ {2,}/g, '  ');
    expect(cut(await remote(['ps', '-a']))).toBe(cut(await local(['ps', '-a'])));
    expect((await same(['ps', '--filter', 'name=idle', '--format', '{{.Names}}'])).stdout).toBe('');
    expect((await same(['ps', '-a', '--filter', 'status=created', '--format', '{{.Names}}'])).stdout).toBe(
      'idle\n',
    );
    await same(['ps', '-a', '--filter', 'label=k=v', '--format', '{{.Names}}']);
  });

  it('images, inspect, top, port and wait', async () => {
    expect((await same(['images'])).stdout).toMatch(/busybox\s+latest\s+[0-9a-f]{12}/);
    await same(['images', '--format', '{{.Repository}}:{{.Tag}} {{.ID}} {{.Size}}']);
    await same(['images', '-q']);
    await same(['inspect', 'lister']);
    await same(['inspect', '-f', '{{.State.Running}} {{.Name}}', 'lister', 'idle']);
    await same(['inspect', '-f', '{{.Id}}', 'busybox']);
    await same(['top', 'lister']);
    await same(['port', 'lister']);
    await same(['diff', 'idle']);
  });

  it('stats --no-stream, version and info speak of corrald', async () => {
    const s = await mustRemote(['stats', '--no-stream', '--format', '{{.Name}} {{.PIDs}}', 'lister']);
    expect(s.stdout).toBe('lister 1\n');
    const v = await mustRemote(['version', '--format', 'json']);
    expect(JSON.parse(v.stdout).server.apiVersion).toBe('1.47');
    const info = await mustRemote(['info', '--format', 'json']);
    expect(JSON.parse(info.stdout).dataRoot).toBe(d.root);
    expect((await mustRemote(['info'])).stdout).toContain(`Context:    ${host}`);
  });

  it('events with --since and --until', async () => {
    const args = [
      'events',
      '--since',
      '10m',
      '--until',
      '0s',
      '--filter',
      'container=idle',
      '--format',
      'json',
    ];
    const r = await mustRemote(args);
    const actions = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).Action);
    expect(actions).toContain('create');
  });

  it('kill, start and rm -f', async () => {
    expect(seen(await remote(['kill', 'lister']))).toEqual({ status: 0, stdout: 'lister\n', stderr: '' });
    expect((await same(['wait', 'lister'])).out).toBe('137');
    expect((await mustRemote(['start', 'lister'])).out).toBe('lister');
    expect((await mustRemote(['rm', '-f', 'lister', 'idle'])).stdout).toBe('lister\nidle\n');
  });
});

describe('corral --host: images and volumes', () => {
  it('saves, tags, removes and loads an image', async () => {
    const dir = c.tempDir('remote-images');
    const tar = join(dir, 'bb.tar');
    await mustRemote(['tag', 'busybox', 'copy:one']);
    await mustRemote(['save', '-o', tar, 'copy:one']);
    expect(existsSync(tar)).toBe(true);
    const rmi = await mustRemote(['rmi', 'copy:one']);
    expect(rmi.stdout).toBe('Untagged: copy:one\n');
    expect((await mustRemote(['load', '-i', tar])).stdout).toBe('Loaded image: copy:one\n');
    expect((await mustRemote(['images', '--format', '{{.Repository}}:{{.Tag}}'])).stdout).toContain(
      'copy:one',
    );
    await mustRemote(['rmi', 'copy:one']);
  });

  it('pushes to and pulls from a registry on loopback, printing the digest as daemonless', async () => {
    // Debian's docker-registry (the distribution server) on a free loopback port, ended by its pid.
    const dir = c.tempDir('remote-registry');
    const port = await freePort();
    writeFileSync(
      join(dir, 'config.yml'),
      `version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: ${dir}/data\nhttp:\n  addr: 127.0.0.1:${port}\n`,
    );
    const registry = spawn('/usr/bin/docker-registry', ['serve', join(dir, 'config.yml')], {
      stdio: 'ignore',
    });
    c.add(async () => {
      registry.kill('SIGTERM');
      if (registry.exitCode === null) await new Promise((r) => registry.once('exit', r));
    });
    const ref = `127.0.0.1:${port}/bb:1`;
    await mustRemote(['tag', 'busybox', ref]);
    await until(async () => (await remote(['push', ref])).status === 0, 'the registry to take a push');
    const pushed = await mustRemote(['push', ref]);
    expect(pushed.stdout).toMatch(/^Digest: sha256:[0-9a-f]{64}\n$/);
    expect((await local(['push', ref])).stdout).toBe(pushed.stdout);
    await mustRemote(['rmi', ref]);
    expect((await mustRemote(['pull', ref])).stdout).toBe(pushed.stdout);
    expect((await mustRemote(['images', '--format', '{{.Repository}}:{{.Tag}}'])).stdout).toContain(ref);
    const missing = [`127.0.0.1:${port}/nosuch:1`];
    const r = await remote(['pull', ...missing]);
    expect(r.status).toBe(1);
    expect(seen(r)).toEqual(seen(await local(['pull', ...missing])));
    await mustRemote(['rmi', ref]);
  });

  it('creates, lists and removes a volume', async () => {
    expect((await mustRemote(['volume', 'create', 'vol1'])).stdout).toBe('vol1\n');
    const ls = await remote(['volume', 'ls', '--format', '{{.Name}} {{.Driver}}']);
    expect(seen(ls)).toEqual(seen(await local(['volume', 'ls', '--format', '{{.Name}} {{.Driver}}'])));
    expect(ls.stdout).toContain('vol1 local');
    expect((await mustRemote(['volume', 'rm', 'vol1'])).stdout).toBe('vol1\n');
  });
});

describe('corral --host: cp', () => {
  it('copies both ways as daemonless does: files, folders, tar streams, errors', async () => {
    await mustRemote([
      'run',
      '-d',
      '--name',
      'files',
      'busybox',
      'sh',
      '-c',
      'mkdir -p /data/sub; echo hello > /data/sub/f; exec sleep 100',
    ]);
    await until(
      async () => (await remote(['exec', 'files', 'cat', '/data/sub/f'])).stdout === 'hello\n',
      'the files',
    );
    const dir = c.tempDir('remote-cp');
    for (const side of ['remote', 'local']) mkdirSync(join(dir, side));
    const out = await remote(['cp', 'files:/data', join(dir, 'remote')]);
    expect(seen(out)).toEqual({
      status: 0,
      stdout: '',
      stderr: `Successfully copied 6B to ${join(dir, 'remote')}\n`,
    });
    await local(['cp', 'files:/data', join(dir, 'local')]);
    expect(readFileSync(join(dir, 'remote', 'data', 'sub', 'f'), 'utf8')).toBe('hello\n');
    writeFileSync(join(dir, 'up.txt'), 'payload\n');
    const up = await remote(['cp', join(dir, 'up.txt'), 'files:/data/up.txt']);
    expect(seen(up)).toEqual({
      status: 0,
      stdout: '',
      stderr: 'Successfully copied 8B to files:/data/up.txt\n',
    });
    expect((await remote(['exec', 'files', 'cat', '/data/up.txt'])).stdout).toBe('payload\n');
    // Tar streams: out on stdout, in on stdin.
    const tar = await exec('sh', [
      '-c',
      `'${process.execPath}' -- '${corralBin}' --host '${host}' cp files:/data/sub - | tar -t`,
    ]);
    expect(tar.stdout.split('\n').sort()).toEqual(['', 'sub/', 'sub/f']);
    for (const args of [
      ['cp', 'files:/nosuch', dir],
      ['cp', join(dir, 'nosuch'), 'files:/data'],
      ['cp', 'nosuchctr:/x', dir],
    ]) {
      const r = await remote(args);
      expect(r.status, args.join(' ')).toBe(1);
      expect(seen(r), args.join(' ')).toEqual(seen(await local(args)));
    }
    await mustRemote(['rm', '-f', 'files']);
  });
});

describe('corral --host: errors', () => {
  it("an unknown container fails as daemonless: exit 1 and Docker's message", async () => {
    for (const args of [
      ['logs', 'nosuch'],
      ['stop', 'nosuch'],
      ['inspect', 'nosuch'],
      ['rm', 'nosuch'],
      ['exec', 'nosuch', 'true'],
    ]) {
      const r = await remote(args);
      expect(r.status, args.join(' ')).toBe(1);
      expect(seen(r), args.join(' ')).toEqual(seen(await local(args)));
    }
    expect((await remote(['logs', 'nosuch'])).stderr).toBe('corral: No such container: nosuch\n');
  });

  it('a failure in run or create exits 125, a missing program 127', async () => {
    for (const args of [
      ['run', '--rm', 'busybox', 'no-such-program'],
      ['run', '--rm', '--memory', 'lots', 'busybox', 'true'],
      ['run', '--rm', '-e', 'NOEQUALS', 'busybox', 'true'],
    ]) {
      const r = await remote(args);
      expect(seen(r), args.join(' ')).toEqual(seen(await local(args)));
    }
    expect((await remote(['run', '--rm', 'busybox', 'no-such-program'])).status).toBe(127);
  });

  it('what remote mode cannot do fails with exit 125 and names it, and nothing runs locally', async () => {
    const check = await remote(['system', 'check']);
    expect(check.status).toBe(125);
    expect(check.stderr).toContain('corral system check is not supported with --host (remote mode)');
    const rootfs = c.tempDir('remote-rootfs');
    mkdirSync(join(rootfs, 'bin'), { recursive: true });
    const r = await remote(['run', '--rm', '--rootfs', rootfs, '/bin/true']);
    expect(r.status).toBe(125);
    expect(r.stderr).toContain('--rootfs is not supported with --host (remote mode)');
    const both = await exec(process.execPath, ['--', corralBin, '--root', d.root, '--host', host, 'ps']);
    expect(both.status).toBe(125);
    expect(both.stderr).toContain('--root and --host together');
  });

  it('takes CORRAL_HOST as --host, and says when corrald is not there', async () => {
    const env = { ...process.env, CORRAL_HOST: host };
    const r = await exec(process.execPath, ['--', corralBin, 'run', '--rm', 'busybox', 'echo', 'via-env'], {
      env,
    });
    expect(r.stdout).toBe('via-env\n');
    const gone = `unix://${join(c.tempDir('remote-gone'), 'no.sock')}`;
    const ps = await exec(process.execPath, ['--', corralBin, '--host', gone, 'ps']);
    expect(ps.status).toBe(1);
    expect(ps.stderr).toContain(`Cannot connect to corrald at ${gone}`);
    const run = await exec(process.execPath, ['--', corralBin, '--host', gone, 'run', 'busybox']);
    expect(run.status).toBe(125);
  });
});
