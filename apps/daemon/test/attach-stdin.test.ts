import { type ChildProcess, spawn } from 'node:child_process';
import { connect as netConnect } from 'node:net';
import { dirname, join } from 'node:path';
import { Cleanups, mountsUnder, until } from '@corral/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { containerDirs, type Daemon, startDaemon } from './daemon.js';

// docker run -di, then docker attach and type: the stdin of a detached -i container is held by
// its keeper, so clients attach to it at any time, also after corrald was SIGKILLed and started
// again (live-restore). A client that goes away mid-attach leaves nothing behind.
const c = new Cleanups();
let d: Daemon;
beforeAll(async () => {
  d = await startDaemon(c);
});
afterAll(() => c.run());

interface Attached {
  child: ChildProcess;
  out: () => string;
  exited: Promise<number | null>;
}

/** `docker attach NAME` (or any docker command) with its stdin a pipe of ours. */
function dockerWithInput(daemon: Daemon, args: string[]): Attached {
  const child = spawn('docker', args, {
    env: {
      ...process.env,
      DOCKER_HOST: `unix://${daemon.socket}`,
      DOCKER_CONFIG: join(dirname(daemon.root), 'docker-config'),
    },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (b) => {
    out += b;
  });
  child.stderr!.on('data', (b) => {
    out += b;
  });
  child.stdin!.on('error', () => {});
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  c.add(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  return { child, out: () => out, exited };
}

const must = async (daemon: Daemon, args: string[]) => {
  const r = await daemon.docker(args);
  if (r.status !== 0) throw new Error(`docker ${args.join(' ')}: ${r.stderr}`);
  return r;
};

/** Types a line into an attached client and waits for `expect` in what it printed. */
async function type(a: Attached, line: string, expect: string): Promise<void> {
  a.child.stdin!.write(`${line}\n`);
  await until(
    () => a.out().includes(expect),
    `"${expect}" from the attached shell (got: ${a.out()})`,
    15_000,
  );
}

describe('attaching stdin to a detached -i container', () => {
  it('docker run -di, then docker attach types into it, again and again; other containers have /dev/null', async () => {
    await must(d, ['run', '-di', '--name', 'shell', '--network', 'none', 'busybox', 'sh']);
    await must(d, ['run', '-d', '--name', 'plain', '--network', 'none', 'busybox', 'sleep', '300']);
    expect((await must(d, ['exec', 'shell', 'readlink', '/proc/1/fd/0'])).out).toMatch(
      /^(pipe|socket):\[\d+\]$/,
    );
    expect((await must(d, ['exec', 'plain', 'readlink', '/proc/1/fd/0'])).out).toBe('/dev/null');
    const inspect = JSON.parse((await must(d, ['inspect', 'shell'])).stdout)[0].Config;
    expect([inspect.OpenStdin, inspect.StdinOnce]).toEqual([true, false]);

    const first = dockerWithInput(d, ['attach', 'shell']);
    await type(first, 'echo hello-$((20+22))', 'hello-42');
    // The client goes away (killed): the shell runs on, its stdin still open.
    first.child.kill('SIGKILL');
    await first.exited;
    const second = dockerWithInput(d, ['attach', 'shell']);
    await type(second, 'echo again-$((1+1))', 'again-2');
    second.child.kill('SIGKILL');
    await second.exited;
    expect((await must(d, ['inspect', '-f', '{{.State.Running}}', 'shell'])).out).toBe('true');
    await must(d, ['rm', '-f', 'plain']);
  });

  it("keeps the stdin across a SIGKILL of corrald: a new corrald attaches it again, the exit code is the shell's", async () => {
    const exited = new Promise((r) => d.child.once('exit', r));
    d.child.kill('SIGKILL');
    await exited;
    d = await startDaemon(c, [], dirname(d.root));
    expect((await must(d, ['inspect', '-f', '{{.State.Running}}', 'shell'])).out).toBe('true');
    const again = dockerWithInput(d, ['attach', 'shell']);
    await type(again, 'echo restored-$((3*3))', 'restored-9');
    again.child.stdin!.write('exit 7\n');
    expect(await again.exited).toBe(7);
    await until(
      async () =>
        (await d.docker(['inspect', '-f', '{{.State.Status}} {{.State.ExitCode}}', 'shell'])).out ===
        'exited 7',
      'the shell recorded as exited 7',
    );
    await must(d, ['rm', 'shell']);
  });

  it("with StdinOnce, the first client's EOF ends the program's stdin", async () => {
    const created = await d.api('POST', '/v1.47/containers/create?name=once', {
      Image: 'busybox',
      Cmd: ['sh', '-c', 'cat; echo after-eof'],
      OpenStdin: true,
      StdinOnce: true,
      HostConfig: { NetworkMode: 'none' },
    });
    expect(created.status, created.text).toBe(201);
    await must(d, ['start', 'once']);
    const a = dockerWithInput(d, ['attach', 'once']);
    await type(a, 'a line', 'a line');
    a.child.stdin!.end();
    expect(await a.exited).toBe(0);
    expect(a.out()).toContain('after-eof');
    await must(d, ['rm', 'once']);
  });

  it('keeps the stdin open across restarts by the restart policy', async () => {
    await must(d, [
      'run',
      '-di',
      '--restart',
      'on-failure:1',
      '--name',
      'again',
      '--network',
      'none',
      'busybox',
      'sh',
    ]);
    const first = dockerWithInput(d, ['attach', 'again']);
    await type(first, 'echo first-$((1+1))', 'first-2');
    first.child.stdin!.write('exit 3\n');
    expect(await first.exited).toBe(3);
    await until(
      async () =>
        (await d.docker(['inspect', '-f', '{{.RestartCount}} {{.State.Running}}', 'again'])).out === '1 true',
      'the restart',
      20_000,
    );
    const second = dockerWithInput(d, ['attach', 'again']);
    await type(second, 'echo second-$((2+2))', 'second-4');
    second.child.kill('SIGKILL');
    await second.exited;
    await must(d, ['rm', '-f', 'again']);
  });

  it('types into the terminal of a -dit container (raw stream), and it runs on after the client goes', async () => {
    await must(d, ['run', '-dit', '--name', 'term', '--network', 'none', 'busybox', 'sh']);
    const conn = netConnect(d.socket);
    let got = '';
    conn.on('data', (b) => {
      got += b.toString('latin1');
    });
    conn.write(
      'POST /v1.47/containers/term/attach?stream=1&stdin=1&stdout=1&stderr=1 HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n',
    );
    await until(() => got.includes('101 UPGRADED'), `the upgrade (got: ${got})`);
    conn.write('echo tty-$((2+3))\n');
    await until(
      () => got.includes('tty-5\r\n'),
      `the terminal's answer (got: ${JSON.stringify(got)})`,
      15_000,
    );
    conn.destroy();
    expect((await must(d, ['inspect', '-f', '{{.State.Running}}', 'term'])).out).toBe('true');
    expect((await must(d, ['logs', 'term'])).stdout).toContain('tty-5');
    await must(d, ['rm', '-f', 'term']);
  });
});

describe('a client that goes away mid-attach', () => {
  it('docker run --rm -i killed mid-stream: its container ends (stdin once) and leaves nothing', async () => {
    const run = dockerWithInput(d, [
      'run',
      '--rm',
      '-i',
      '--name',
      'gone',
      '--network',
      'none',
      'busybox',
      'sh',
      '-c',
      'cat; echo end',
    ]);
    await type(run, 'mid-stream', 'mid-stream');
    run.child.kill('SIGKILL');
    await run.exited;
    await until(
      async () =>
        !(await d.docker(['ps', '-aq', '--filter', 'name=gone'])).out && !containerDirs(d.root).length,
      'the --rm container removed',
      20_000,
    );
    expect(mountsUnder(d.root)).toEqual([]);
  });
});

describe('an attached docker run -i across a SIGKILL of corrald', () => {
  it("an input that ends before the start (docker run -i < /dev/null) is the program's EOF", async () => {
    const r = await d.docker(
      ['run', '-i', '--rm', '--network', 'none', 'busybox', 'sh', '-c', 'cat; echo eof'],
      {
        input: '',
      },
    );
    expect(r.status, r.stderr).toBe(0);
    expect(r.out).toBe('eof');
  });

  it('runs on; a restarted corrald lets docker attach reach it again, and its log lost no line', async () => {
    const script = 'while read l; do echo got-$l; done; echo bye';
    const run = dockerWithInput(d, [
      'run',
      '-i',
      '--name',
      'survivor',
      '--network',
      'none',
      'busybox',
      'sh',
      '-c',
      script,
    ]);
    await type(run, 'one', 'got-one');
    const config = JSON.parse((await must(d, ['inspect', 'survivor'])).stdout)[0].Config;
    expect([config.OpenStdin, config.StdinOnce]).toEqual([true, true]);
    const exited = new Promise((r) => d.child.once('exit', r));
    d.child.kill('SIGKILL');
    await exited;
    // The client has lost its daemon (its connection is gone); the container has not.
    await Promise.race([run.exited, new Promise((r) => setTimeout(r, 10_000))]);
    run.child.kill('SIGKILL');
    await run.exited;
    d = await startDaemon(c, [], dirname(d.root));
    expect((await must(d, ['inspect', '-f', '{{.State.Running}}', 'survivor'])).out).toBe('true');
    const again = dockerWithInput(d, ['attach', 'survivor']);
    await type(again, 'two', 'got-two');
    // StdinOnce: this client's EOF is the program's.
    again.child.stdin!.end();
    expect(await again.exited).toBe(0);
    expect(again.out()).toContain('bye');
    await until(
      async () =>
        (await d.docker(['inspect', '-f', '{{.State.Status}} {{.State.ExitCode}}', 'survivor'])).out ===
        'exited 0',
      'survivor recorded as exited 0',
    );
    expect((await must(d, ['logs', 'survivor'])).stdout).toBe('got-one\ngot-two\nbye\n');
    await must(d, ['rm', 'survivor']);
  });
});
