import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Cleanups } from '@corral/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Daemon, startDaemonWithMaker } from './daemon.js';

// docker commit --change / --pause and docker import --change / --message through corrald,
// with the docker CLI: the changes are Dockerfile instructions parsed by the engine (the same
// parser as `corral commit -c` and `corral import -c`).
const c = new Cleanups();
let d: Daemon;
let dir: string;
beforeAll(async () => {
  dir = c.tempDir('corrald-commit');
  d = await startDaemonWithMaker(c, 'made');
});
afterAll(() => c.run());

const must = (args: string[], input?: string) => d.must(args, { input });
const config = async (ref: string) => JSON.parse((await must(['inspect', ref])).stdout)[0].Config;
const imageIds = async () => (await must(['images', '-q', '--no-trunc'])).out.split('\n').sort();

const CHANGES = [
  'CMD ["cat", "/made"]',
  'ENV A=1 B="two words"',
  'ENV C=$A-c',
  'EXPOSE 8080/udp 90',
  'LABEL team=corral "with space"=yes',
  'USER nobody',
  'WORKDIR /tmp',
  'WORKDIR sub',
  'VOLUME ["/data"]',
  'STOPSIGNAL SIGINT',
];

describe('docker commit through corrald', () => {
  it('applies -c changes over the image config and -m as the history comment', async () => {
    const args = ['commit', ...CHANGES.flatMap((x) => ['-c', x]), '-m', 'with changes', 'maker', 'changed:1'];
    expect((await must(args)).out).toMatch(/^sha256:[0-9a-f]{64}$/);
    const cfg = await config('changed:1');
    expect(cfg.Cmd).toEqual(['cat', '/made']);
    expect(cfg.Env).toEqual(expect.arrayContaining(['A=1', 'B=two words', 'C=1-c']));
    // busybox's PATH stays: ENV adds to the image's environment.
    expect(cfg.Env.some((e: string) => e.startsWith('PATH='))).toBe(true);
    expect(cfg.ExposedPorts).toEqual({ '8080/udp': {}, '90/tcp': {} });
    expect(cfg.Labels).toEqual({ team: 'corral', 'with space': 'yes' });
    expect(cfg.User).toBe('nobody');
    expect(cfg.WorkingDir).toBe('/tmp/sub');
    expect(cfg.Volumes).toEqual({ '/data': {} });
    expect(cfg.StopSignal).toBe('SIGINT');
    const history = await must(['history', '--no-trunc', '--format', '{{.Comment}}', 'changed:1']);
    expect(history.out.split('\n')[0]).toBe('with changes');
    // The image runs with its new config: the command, as nobody, in /tmp/sub.
    const run = await must(['run', '--rm', '--network', 'none', '-u', '0', 'changed:1']);
    expect(run.out).toBe('made');
    const where = await must([
      'run',
      '--rm',
      '--network',
      'none',
      '--entrypoint',
      'sh',
      'changed:1',
      '-c',
      'pwd; id -un',
    ]);
    expect(where.out).toBe('/tmp/sub\nnobody');
  });

  it('makes an image that runs as the container did (its command, env, workdir, user), as dockerd', async () => {
    await must([
      'run',
      '--name',
      'envy',
      '--network',
      'none',
      '-e',
      'FOO=bar',
      '-w',
      '/tmp',
      '-u',
      'nobody',
      'busybox',
      'sh',
      '-c',
      'echo $FOO in $(pwd)',
    ]);
    await must(['commit', 'envy', 'envy:1']);
    const cfg = await config('envy:1');
    expect(cfg.Cmd).toEqual(['sh', '-c', 'echo $FOO in $(pwd)']);
    expect(cfg.Env).toContain('FOO=bar');
    expect([cfg.WorkingDir, cfg.User]).toEqual(['/tmp', 'nobody']);
    expect((await must(['run', '--rm', '--network', 'none', 'envy:1'])).out).toBe('bar in /tmp');
    // --entrypoint replaced the image's: it is the new image's Entrypoint, its arguments the Cmd.
    await must([
      'run',
      '--name',
      'ep',
      '--network',
      'none',
      '--entrypoint',
      'echo',
      'busybox',
      'from',
      'entrypoint',
    ]);
    await must(['commit', 'ep', 'ep:1']);
    const ep = await config('ep:1');
    expect([ep.Entrypoint, ep.Cmd]).toEqual([['echo'], ['from', 'entrypoint']]);
    expect((await must(['run', '--rm', '--network', 'none', 'ep:1'])).out).toBe('from entrypoint');
    expect((await must(['run', '--rm', '--network', 'none', 'ep:1', 'other'])).out).toBe('other');
    await must(['rm', 'envy', 'ep']);
  });

  it('refuses an instruction that is not a change (400) and stores no image', async () => {
    const before = await imageIds();
    const r = await d.docker(['commit', '-c', 'RUN echo no', 'maker', 'refused:1']);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('invalid change "RUN echo no": RUN is not a valid change command');
    const badPort = await d.docker(['commit', '-c', 'EXPOSE 99999', 'maker', 'refused:2']);
    expect(badPort.status).toBe(1);
    expect(badPort.stderr).toContain('invalid port range "99999"');
    expect(await imageIds()).toEqual(before);
  });

  it('pauses a running container for the commit unless --pause=false, and it runs on', async () => {
    await must([
      'run',
      '-d',
      '--name',
      'busy',
      '--network',
      'none',
      'busybox',
      'sh',
      '-c',
      'echo up > /up; sleep 60',
    ]);
    const since = Math.floor(Date.now() / 1000) - 1;
    await must(['commit', 'busy', 'busy:paused']);
    await must(['commit', '--pause=false', 'busy', 'busy:live']);
    const until = Math.floor(Date.now() / 1000) + 1;
    const events = await must([
      'events',
      '--since',
      String(since),
      '--until',
      String(until),
      '--filter',
      'container=busy',
      '--format',
      '{{.Action}}',
    ]);
    // One pause and one unpause: the first commit's; the second commit froze nothing.
    expect(events.out.split('\n').filter((a) => a === 'pause' || a === 'unpause')).toEqual([
      'pause',
      'unpause',
    ]);
    const state = JSON.parse((await must(['inspect', 'busy'])).stdout)[0].State;
    expect([state.Running, state.Paused]).toEqual([true, false]);
    expect((await must(['run', '--rm', '--network', 'none', 'busy:live', 'cat', '/up'])).out).toBe('up');
    await must(['rm', '-f', 'busy']);
  });
});

describe('docker import through corrald', () => {
  let tar: string;
  beforeAll(async () => {
    tar = join(dir, 'rootfs.tar');
    await must(['export', '-o', tar, 'maker']);
  });

  it('imports a file with -c changes and -m, and the image runs', async () => {
    const r = await must([
      'import',
      '-c',
      'CMD ["cat", "/made"]',
      '-c',
      'ENV X=y',
      '-m',
      'from a tarball',
      tar,
      'imported:1',
    ]);
    expect(r.out).toMatch(/^sha256:[0-9a-f]{64}$/);
    const cfg = await config('imported:1');
    expect(cfg.Cmd).toEqual(['cat', '/made']);
    expect(cfg.Env).toEqual(['X=y']);
    const history = await must(['history', '--no-trunc', '--format', '{{.Comment}}', 'imported:1']);
    expect(history.out).toBe('from a tarball');
    expect((await must(['run', '--rm', '--network', 'none', 'imported:1'])).out).toBe('made');
  });

  it('imports from stdin (fromSrc=-), and an untagged name is :latest', async () => {
    const child = execFileSync('docker', ['import', '-', 'piped'], {
      input: readFileSync(tar),
      env: { ...process.env, DOCKER_HOST: `unix://${d.socket}`, DOCKER_CONFIG: join(dir, 'docker-config') },
    });
    expect(child.toString().trim()).toMatch(/^sha256:/);
    expect((await must(['run', '--rm', '--network', 'none', 'piped:latest', 'cat', '/made'])).out).toBe(
      'made',
    );
  });

  // From a URL: docker-import-url.test.ts.
  it('refuses a bad change and a corrupt tarball, storing nothing', async () => {
    const before = await imageIds();
    const bad = await d.docker(['import', '-c', 'ONBUILD RUN x', tar, 'nope:1']);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain('ONBUILD is not a valid change command');
    const corrupt = await d.api(
      'POST',
      '/v1.47/images/create?fromSrc=-&repo=nope',
      Buffer.from('\x1f\x8bnot gzip at all'),
      {
        'Content-Type': 'application/x-tar',
      },
    );
    expect(corrupt.status).toBeGreaterThanOrEqual(400);
    expect(await imageIds()).toEqual(before);
  });
});
