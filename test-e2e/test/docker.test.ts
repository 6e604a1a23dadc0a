// corral and a real Docker Engine (Debian's docker.io, dockerd 20.10) move images both ways:
// corral save -> docker load / docker run, and docker save / docker import -> corral load / corral run.
// The test starts a private dockerd (its own socket, data root, exec root, managed containerd,
// no bridge, no iptables, a unique cgroup parent) and removes all of it afterwards.
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, promises as fs, openSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Corral,
  childrenOf,
  endChild,
  exec,
  leftovers,
  mountsUnder,
  must,
  removeCgroups,
  requireProgram,
  stopProcess,
  tempRoot,
  uniqueName,
  unmountUnder,
  until,
} from './helpers.js';

/** The client that matches the daemon (20.10); CORRAL_E2E_DOCKER=/usr/local/bin/docker tries the 28.x one. */
const DOCKER =
  process.env['CORRAL_E2E_DOCKER'] ??
  (existsSync('/usr/bin/docker') ? '/usr/bin/docker' : '/usr/local/bin/docker');

let tmp = '';
let sock = '';
let cgroupParent = '';
let dockerd: ChildProcess | undefined;
let containerdPids: number[] = [];
let runDirs: ReturnType<typeof leftovers> | undefined;
let env: NodeJS.ProcessEnv = process.env;
/** The corral root that makes images for docker. */
let maker: Corral;
/** An empty corral root that reads what docker wrote. */
let reader: Corral;

function docker(args: string[]) {
  return must(DOCKER, ['-H', `unix://${sock}`, ...args], { env });
}

async function dockerInspect(
  ref: string,
): Promise<{ Id: string; RootFS: { Layers: string[] }; Config: { Cmd: string[] | null } }> {
  return JSON.parse((await docker(['image', 'inspect', ref])).out)[0];
}

async function corralInspect(c: Corral, ref: string): Promise<{ Id: string; RootFS: { Layers: string[] } }> {
  return JSON.parse((await c.must(['inspect', ref])).out)[0];
}

function dockerdLog(): string {
  try {
    return readFileSync(path.join(tmp, 'dockerd.log'), 'utf8').slice(-4000);
  } catch {
    return '';
  }
}

beforeAll(async () => {
  requireProgram('/usr/sbin/dockerd', 'docker.io');
  requireProgram(DOCKER, 'docker.io');
  tmp = await tempRoot('docker');
  sock = path.join(tmp, 'docker.sock');
  cgroupParent = uniqueName('corral-e2e');
  env = { ...process.env, DOCKER_CONFIG: path.join(tmp, 'client') };
  delete env['DOCKER_HOST'];
  delete env['DOCKER_CONTEXT'];
  maker = new Corral(path.join(tmp, 'corral'), env);
  reader = new Corral(path.join(tmp, 'corral-reader'), env);
  // An empty daemon.json so that a machine-wide /etc/docker/daemon.json changes nothing here.
  await fs.writeFile(path.join(tmp, 'daemon.json'), '{}\n');
  runDirs = leftovers(['/run/docker', '/run/docker/plugins', '/run/containerd', '/run/containerd/s']);
  const log = openSync(path.join(tmp, 'dockerd.log'), 'a');
  dockerd = spawn(
    '/usr/sbin/dockerd',
    [
      '--config-file',
      path.join(tmp, 'daemon.json'),
      '--host',
      `unix://${sock}`,
      '--data-root',
      path.join(tmp, 'data'),
      '--exec-root',
      path.join(tmp, 'exec'),
      '--pidfile',
      path.join(tmp, 'docker.pid'),
      '--bridge',
      'none',
      '--iptables=false',
      '--ip6tables=false',
      '--ip-forward=false',
      '--ip-masq=false',
      '--userland-proxy=false',
      '--cgroup-parent',
      cgroupParent,
      // dockerd 20.10 uses a containerd already listening on /run/containerd/containerd.sock
      // and starts its own (state under the exec and data roots) otherwise; namespaces of our own
      // keep this daemon's objects apart in either case.
      '--containerd-namespace',
      cgroupParent,
      '--containerd-plugins-namespace',
      `${cgroupParent}-plugins`,
    ],
    { stdio: ['ignore', log, log] },
  );
  closeSync(log);
  await until(
    async () => {
      if (dockerd!.exitCode !== null)
        throw new Error(`dockerd exited (${dockerd!.exitCode}): ${dockerdLog()}`);
      return (await exec(DOCKER, ['-H', `unix://${sock}`, 'version'], { env })).status === 0;
    },
    'dockerd to answer on its socket',
    90_000,
  ).catch((e) => {
    throw new Error(`${(e as Error).message}\n${dockerdLog()}`);
  });
  containerdPids = childrenOf(dockerd.pid!);
  // The embedded busybox is stored on first use.
  await maker.must(['run', '--rm', 'busybox', 'true']);
});

afterAll(async () => {
  const problems: string[] = [];
  for (const c of [maker, reader]) await c?.removeContainers().catch(() => {});
  if (dockerd) {
    // SIGTERM stops dockerd's containers, then dockerd, which stops its managed containerd.
    await endChild(dockerd, 60_000);
    for (const pid of containerdPids) await stopProcess(pid).catch((e) => problems.push(String(e)));
  }
  if (tmp) {
    await unmountUnder(tmp).catch((e) => problems.push(String(e)));
    if (cgroupParent) problems.push(...removeCgroups(cgroupParent));
    if (!mountsUnder(tmp).length) await fs.rm(tmp, { recursive: true, force: true });
  }
  runDirs?.clean();
  if (problems.length) throw new Error(`docker teardown: ${problems.join('\n')}`);
});

describe('corral save -> docker load (dockerd 20.10)', () => {
  it('docker loads the embedded busybox with the image ID and layers corral shows, and runs it', async () => {
    const archive = path.join(tmp, 'busybox.tar');
    await maker.must(['save', '-o', archive, 'busybox']);
    expect((await docker(['load', '-i', archive])).out).toContain('Loaded image: busybox:latest');
    const mine = await corralInspect(maker, 'busybox');
    const theirs = await dockerInspect('busybox:latest');
    expect(theirs.Id).toBe(mine.Id);
    expect(theirs.Id).toBe((await maker.image('busybox')).id);
    expect(theirs.RootFS.Layers).toEqual(mine.RootFS.Layers);
    expect(
      (await docker(['run', '--rm', '--network', 'none', 'busybox', 'echo', 'hello from docker'])).out,
    ).toBe('hello from docker');
  });

  it('docker loads an image made by corral commit (a whiteout, a new file, the Cmd) and runs it', async () => {
    await maker.must([
      'run',
      '--name',
      'e2e-maker',
      'busybox',
      'sh',
      '-c',
      'echo made > /made && rm /bin/vi',
    ]);
    const id = (await maker.must(['commit', 'e2e-maker', 'e2e/made:1'])).out;
    await maker.must(['rm', 'e2e-maker']);
    const archive = path.join(tmp, 'made.tar');
    await maker.must(['save', '-o', archive, 'e2e/made:1']);
    expect((await docker(['load', '-i', archive])).out).toContain('Loaded image: e2e/made:1');
    const theirs = await dockerInspect('e2e/made:1');
    expect(theirs.Id).toBe(id);
    expect(theirs.RootFS.Layers).toEqual((await corralInspect(maker, 'e2e/made:1')).RootFS.Layers);
    expect(theirs.RootFS.Layers).toHaveLength(2);
    const r = await docker([
      'run',
      '--rm',
      '--network',
      'none',
      'e2e/made:1',
      'sh',
      '-c',
      'cat /made; test -e /bin/vi && echo vi-still-there || echo vi-gone',
    ]);
    expect(r.out).toBe('made\nvi-gone');
  });

  it('docker loads one archive that holds two images', async () => {
    const archive = path.join(tmp, 'two.tar');
    await maker.must(['tag', 'busybox', 'e2e/two:a']);
    await maker.must(['save', '-o', archive, 'e2e/two:a', 'e2e/made:1']);
    await docker(['rmi', 'e2e/made:1']);
    const out = (await docker(['load', '-i', archive])).out;
    expect(out).toContain('Loaded image: e2e/two:a');
    expect(out).toContain('Loaded image: e2e/made:1');
    expect((await dockerInspect('e2e/two:a')).Id).toBe((await maker.image('e2e/two:a')).id);
    expect((await dockerInspect('e2e/made:1')).Id).toBe((await maker.image('e2e/made:1')).id);
  });
});

describe('docker save -> corral load (the classic layout that docker 20.10 writes)', () => {
  it('corral loads a retagged busybox from docker save and runs it', async () => {
    await docker(['tag', 'busybox:latest', 'e2e/retag:2']);
    const archive = path.join(tmp, 'retag.tar');
    await docker(['save', '-o', archive, 'e2e/retag:2']);
    const entries = (await must('tar', ['tf', archive])).out.split('\n');
    expect(entries).toContain('manifest.json');
    expect(entries.some((e) => e.endsWith('/layer.tar'))).toBe(true);
    expect((await reader.must(['load', '-i', archive])).out).toBe('Loaded image: e2e/retag:2');
    expect((await reader.image('e2e/retag:2')).id).toBe((await dockerInspect('e2e/retag:2')).Id);
    expect((await reader.must(['run', '--rm', 'e2e/retag:2', 'echo', 'hello from corral'])).out).toBe(
      'hello from corral',
    );
  });

  it('corral export -> docker import -> docker save -> corral load runs in corral', async () => {
    const c = (await maker.must(['create', 'busybox', 'true'])).out;
    const rootfs = path.join(tmp, 'rootfs.tar');
    await maker.must(['export', '-o', rootfs, c]);
    await maker.must(['rm', c]);
    const id = (await docker(['import', rootfs, 'e2e/imported:1'])).out;
    expect(id).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(
      (await docker(['run', '--rm', '--network', 'none', 'e2e/imported:1', '/bin/sh', '-c', 'echo imported']))
        .out,
    ).toBe('imported');
    const archive = path.join(tmp, 'imported.tar');
    await docker(['save', '-o', archive, 'e2e/imported:1']);
    expect((await reader.must(['load', '-i', archive])).out).toBe('Loaded image: e2e/imported:1');
    expect((await reader.image('e2e/imported:1')).id).toBe(id);
    // An imported image has no Cmd: the command is given.
    expect((await reader.must(['run', '--rm', 'e2e/imported:1', '/bin/echo', 'ran in corral'])).out).toBe(
      'ran in corral',
    );
  });

  it('corral loads a two-layer image made by docker commit (with a whiteout) and runs it', async () => {
    await docker([
      'run',
      '--name',
      'e2e-dmaker',
      '--network',
      'none',
      'busybox',
      'sh',
      '-c',
      'mkdir -p /srv/data && echo docker-made > /srv/data/f && rm /bin/vi',
    ]);
    await docker([
      'commit',
      '--change',
      'WORKDIR /srv/data',
      '--change',
      'ENV E2E=yes',
      'e2e-dmaker',
      'e2e/dcommit:1',
    ]);
    await docker(['rm', 'e2e-dmaker']);
    const archive = path.join(tmp, 'dcommit.tar');
    await docker(['save', '-o', archive, 'e2e/dcommit:1']);
    expect((await reader.must(['load', '-i', archive])).out).toBe('Loaded image: e2e/dcommit:1');
    const theirs = await dockerInspect('e2e/dcommit:1');
    expect((await reader.image('e2e/dcommit:1')).id).toBe(theirs.Id);
    expect((await corralInspect(reader, 'e2e/dcommit:1')).RootFS.Layers).toEqual(theirs.RootFS.Layers);
    const r = await reader.must([
      'run',
      '--rm',
      'e2e/dcommit:1',
      'sh',
      '-c',
      'echo "$PWD $E2E $(cat f)"; test -e /bin/vi && echo vi-still-there || echo vi-gone',
    ]);
    expect(r.out).toBe('/srv/data yes docker-made\nvi-gone');
  });
});
