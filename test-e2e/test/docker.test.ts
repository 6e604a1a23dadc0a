// corral and a real Docker Engine (Debian's docker.io, dockerd 20.10) move images both ways:
// corral save -> docker load / docker run, and docker save / docker import -> corral load / corral run.
// The test starts a private dockerd (its own socket, data root, exec root, managed containerd,
// no bridge, no iptables, a unique cgroup parent) and removes all of it afterwards.
import { existsSync, promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PrivateDockerd, startPrivateDockerd } from './dockerd.js';
import { EXPECTED_FILES, MAKE_FILES, SHOW_FILES } from './file-kinds.js';
import { Corral, must, type Registry, type Result, startRegistry, tempRoot } from './helpers.js';

let tmp = '';
let dockerd: PrivateDockerd | undefined;
let registry: Registry | undefined;
let env: NodeJS.ProcessEnv = process.env;
/** The corral root that makes images for docker. */
let maker: Corral;
/** An empty corral root that reads what docker wrote. */
let reader: Corral;

/** The docker client on our daemon, which must succeed; `run` never pulls (nothing is fetched from outside). */
async function docker(args: string[]): Promise<Result> {
  const r = await dockerd!.docker(args);
  if (r.status !== 0) throw new Error(`docker ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r;
}

/** Later tests use docker's busybox without depending on the first test having loaded it. */
async function dockerHasBusybox(): Promise<void> {
  if ((await dockerd!.docker(['image', 'inspect', 'busybox:latest'])).status === 0) return;
  const archive = path.join(tmp, 'busybox-for-docker.tar');
  await maker.must(['save', '-o', archive, 'busybox']);
  await docker(['load', '-i', archive]);
}

async function dockerInspect(
  ref: string,
): Promise<{ Id: string; RootFS: { Layers: string[] }; Config: { Cmd: string[] | null } }> {
  return JSON.parse((await docker(['image', 'inspect', ref])).out)[0];
}

async function corralInspect(c: Corral, ref: string): Promise<{ Id: string; RootFS: { Layers: string[] } }> {
  return JSON.parse((await c.must(['inspect', ref])).out)[0];
}

beforeAll(async () => {
  tmp = await tempRoot('docker');
  dockerd = await startPrivateDockerd(path.join(tmp, 'dockerd'));
  env = dockerd.env;
  maker = new Corral(path.join(tmp, 'corral'), env);
  reader = new Corral(path.join(tmp, 'corral-reader'), env);
  // The embedded busybox is stored on first use.
  await maker.must(['run', '--rm', 'busybox', 'true']);
});

afterAll(async () => {
  const problems: string[] = [];
  for (const c of [maker, reader]) await c?.removeContainers().catch(() => {});
  await registry?.stop().catch((e) => problems.push(String(e)));
  await dockerd?.stop().catch((e) => problems.push(String(e)));
  if (tmp) await fs.rm(tmp, { recursive: true, force: true });
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
    const archive = path.join(tmp, 'made.tar');
    const id = await maker.makeCommittedImage(archive);
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
    await dockerHasBusybox();
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
    await dockerHasBusybox();
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

describe('docker rules for the image config, side by side', () => {
  it('Entrypoint + Cmd, USER, WORKDIR, ENV and the exit status of an image made by docker commit: corral run = docker run', async () => {
    await dockerHasBusybox();
    await docker([
      'run',
      '--name',
      'e2e-cfg',
      '--network',
      'none',
      'busybox',
      'sh',
      '-c',
      'echo bob:x:1234:5678::/home/bob:/bin/sh >> /etc/passwd && mkdir -p /home/bob/w',
    ]);
    await docker([
      'commit',
      '--change',
      'USER bob',
      '--change',
      'WORKDIR /home/bob/w',
      '--change',
      'ENTRYPOINT ["/bin/echo", "ep"]',
      '--change',
      'CMD ["c1"]',
      '--change',
      'ENV A=1 B="two words"',
      'e2e-cfg',
      'e2e/cfg:1',
    ]);
    await docker(['rm', 'e2e-cfg']);
    const archive = path.join(tmp, 'cfg.tar');
    await docker(['save', '-o', archive, 'e2e/cfg:1']);
    await reader.must(['load', '-i', archive]);
    const show = 'echo "$(id -u):$(id -g) $PWD $A|$B"';
    const cases: string[][] = [
      ['e2e/cfg:1'],
      ['e2e/cfg:1', 'x', 'y'],
      ['--entrypoint', '/bin/sh', 'e2e/cfg:1', '-c', show],
      ['--entrypoint', '/bin/sh', '-u', '0', 'e2e/cfg:1', '-c', show],
      ['--entrypoint', '/bin/sh', '-u', '42:43', '-w', '/tmp', '-e', 'A=over', 'e2e/cfg:1', '-c', show],
    ];
    for (const args of cases) {
      const theirs = (await docker(['run', '--rm', '--network', 'none', ...args])).out;
      const mine = (await reader.must(['run', '--rm', ...args])).out;
      expect(mine, `corral run ${args.join(' ')}`).toBe(theirs);
    }
    expect((await reader.must(['run', '--rm', 'e2e/cfg:1'])).out).toBe('ep c1');
    const exit = await dockerd!.docker([
      'run',
      '--rm',
      '--network',
      'none',
      '--entrypoint',
      '/bin/sh',
      'e2e/cfg:1',
      '-c',
      'exit 7',
    ]);
    expect(exit.status).toBe(7);
    expect(
      (await reader.run(['run', '--rm', '--entrypoint', '/bin/sh', 'e2e/cfg:1', '-c', 'exit 7'])).status,
    ).toBe(7);
  });
});

describe('archive variants from docker save', () => {
  it('corral loads a gzipped docker save of two images, and an untagged image saved by ID', async () => {
    await dockerHasBusybox();
    const plain = path.join(tmp, 'pair.tar');
    await docker(['save', '-o', plain, 'busybox:latest', 'e2e/dcommit:1']);
    const gz = path.join(tmp, 'pair.tar.gz');
    await must('gzip', ['-k', plain]);
    const fresh = new Corral(path.join(tmp, 'corral-gz'), env);
    const out = (await fresh.must(['load', '-i', gz])).out.split('\n');
    expect(out.sort()).toEqual(['Loaded image: busybox:latest', 'Loaded image: e2e/dcommit:1']);
    expect((await fresh.image('e2e/dcommit:1')).id).toBe((await dockerInspect('e2e/dcommit:1')).Id);

    const id = (await dockerInspect('e2e/dcommit:1')).Id;
    const byId = path.join(tmp, 'by-id.tar');
    await docker(['save', '-o', byId, id]);
    const untagged = new Corral(path.join(tmp, 'corral-by-id'), env);
    expect((await untagged.must(['load', '-i', byId])).out).toBe(`Loaded image ID: ${id}`);
    expect((await untagged.images()).map((i) => [i.id, i.repoTags])).toEqual([[id, []]]);
    expect((await untagged.must(['run', '--rm', id, 'cat', '/srv/data/f'])).out).toBe('docker-made');
    await untagged.removeContainers();
  });
});

describe('file metadata survives both ways (setuid, hard links, symlinks, fifo, devices, owners, mtimes, long names, whiteouts)', () => {
  it('docker commit -> docker save -> corral load: corral run sees what docker run sees', async () => {
    await dockerHasBusybox();
    await docker(['run', '--name', 'e2e-files', '--network', 'none', 'busybox', 'sh', '-c', MAKE_FILES]);
    await docker(['commit', 'e2e-files', 'e2e/files-docker:1']);
    await docker(['rm', 'e2e-files']);
    const inDocker = await docker([
      'run',
      '--rm',
      '--network',
      'none',
      'e2e/files-docker:1',
      'sh',
      '-c',
      SHOW_FILES,
    ]);
    expect(inDocker.out).toBe(EXPECTED_FILES);
    // Through stdin this time: `docker save | corral load`.
    const archive = path.join(tmp, 'files-docker.tar');
    await docker(['save', '-o', archive, 'e2e/files-docker:1']);
    expect((await reader.must(['load'], readFileSync(archive))).out).toBe('Loaded image: e2e/files-docker:1');
    const inCorral = await reader.must(['run', '--rm', 'e2e/files-docker:1', 'sh', '-c', SHOW_FILES]);
    expect(inCorral.out).toBe(EXPECTED_FILES);
  });

  it('corral commit -> corral save -> docker load: docker run sees what corral run sees', async () => {
    await maker.must(['run', '--name', 'e2e-files', 'busybox', 'sh', '-c', MAKE_FILES]);
    await maker.must(['commit', 'e2e-files', 'e2e/files-corral:1']);
    await maker.must(['rm', 'e2e-files']);
    const inCorral = await maker.must(['run', '--rm', 'e2e/files-corral:1', 'sh', '-c', SHOW_FILES]);
    expect(inCorral.out).toBe(EXPECTED_FILES);
    const archive = path.join(tmp, 'files-corral.tar');
    await maker.must(['save', '-o', archive, 'e2e/files-corral:1']);
    await docker(['load', '-i', archive]);
    const inDocker = await docker([
      'run',
      '--rm',
      '--network',
      'none',
      'e2e/files-corral:1',
      'sh',
      '-c',
      SHOW_FILES,
    ]);
    expect(inDocker.out).toBe(EXPECTED_FILES);
  });
});

describe('through docker-registry on loopback (dockerd trusts 127.0.0.0/8 over plain HTTP)', () => {
  beforeAll(async () => {
    registry = await startRegistry(path.join(tmp, 'registry'));
  });

  it('docker push (Docker schema 2, gzip layers) -> corral pull -> corral run, same digests', async () => {
    const ref = `${registry!.host}/e2e/from-docker:1`;
    await docker(['tag', 'e2e/dcommit:1', ref]);
    const pushed = (await docker(['push', ref])).out;
    const digest = /digest: (sha256:[0-9a-f]{64})/.exec(pushed)?.[1];
    expect(digest).toBeDefined();
    const puller = new Corral(path.join(tmp, 'corral-puller'), env);
    expect((await puller.must(['pull', ref])).out).toContain(digest);
    const image = await puller.image(ref);
    expect(image.manifestDigest).toBe(digest);
    expect(image.id).toBe((await dockerInspect(ref)).Id);
    expect((await puller.must(['run', '--rm', ref, 'sh', '-c', 'echo "$PWD $E2E $(cat f)"'])).out).toBe(
      '/srv/data yes docker-made',
    );
    await puller.removeContainers();
  });

  it('corral push (OCI manifest, uncompressed layers) -> docker pull -> docker run, same digests', async () => {
    const ref = `${registry!.host}/e2e/from-corral:1`;
    await maker.must(['tag', 'e2e/made:1', ref]);
    await maker.must(['push', ref]);
    const mine = await maker.image(ref);
    await docker(['pull', ref]);
    const theirs = JSON.parse((await docker(['image', 'inspect', ref])).out)[0];
    expect(theirs.Id).toBe(mine.id);
    expect(theirs.RepoDigests).toContain(`${registry!.host}/e2e/from-corral@${mine.manifestDigest}`);
    expect((await docker(['run', '--rm', '--network', 'none', ref, 'cat', '/made'])).out).toBe('made');
  });

  // `docker manifest` (create/annotate/push an index) is a client-side command of the 28.x CLI.
  it.skipIf(!existsSync('/usr/local/bin/docker'))(
    'an index made by docker manifest: corral pull picks linux/amd64, and --platform linux/arm64 the other',
    async () => {
      const host = registry!.host;
      const amd64 = `${host}/e2e/from-docker:1`;
      const arm64 = `${host}/e2e/from-corral:1`;
      const list = `${host}/e2e/multi:1`;
      const docker28 = (args: string[]) => must('/usr/local/bin/docker', args, { env });
      await docker28(['manifest', 'create', '--insecure', list, amd64, arm64]);
      await docker28(['manifest', 'annotate', '--arch', 'arm64', '--variant', 'v8', list, arm64]);
      await docker28(['manifest', 'push', '--insecure', list]);

      const amd = new Corral(path.join(tmp, 'corral-amd64'), env);
      await amd.must(['pull', list]);
      expect((await amd.image(list)).id).toBe((await dockerInspect(amd64)).Id);
      const arm = new Corral(path.join(tmp, 'corral-arm64'), env);
      await arm.must(['pull', '--platform', 'linux/arm64', list]);
      expect((await arm.image(list)).id).toBe((await maker.image('e2e/made:1')).id);
    },
  );
});
