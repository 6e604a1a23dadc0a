// corral and Debian's podman (4.3) move images both ways: corral save -> podman load / podman run,
// and podman save (docker-archive and oci-archive) -> corral load / corral run. podman keeps all its
// state (storage, run root, tmp dir, events, network config) in a temp folder, removed afterwards.
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Corral,
  exec,
  mountsUnder,
  must,
  prepareCgroupParent,
  requireProgram,
  tempRoot,
  uniqueName,
  unmountUnder,
} from './helpers.js';
import { PODMAN, PODMAN_RLIMITS, podmanGlobal } from './peers.js';

let tmp = '';
let cgroupParent = '';
let cgroups: ReturnType<typeof prepareCgroupParent> | undefined;
let maker: Corral;
let reader: Corral;

function global(): string[] {
  // crun, podman's first choice when installed, refuses this hybrid cgroup layout.
  return podmanGlobal(tmp, ['--runtime', 'runc']);
}

function podman(args: string[]) {
  return must(PODMAN, [...global(), ...args]);
}

/** --pull=never: nothing is fetched from outside, and an image missing here is an error, not a download. */
function podmanRun(image: string, cmd: string[]) {
  return podman([
    'run',
    '--rm',
    '--pull=never',
    '--network',
    'none',
    '--cgroup-parent',
    cgroupParent,
    ...PODMAN_RLIMITS,
    image,
    ...cmd,
  ]);
}

interface PodmanImage {
  Id: string;
  Digest: string;
  Names?: string[];
}

async function podmanImages(): Promise<PodmanImage[]> {
  return JSON.parse((await podman(['images', '--format', 'json'])).out);
}

beforeAll(async () => {
  requireProgram(PODMAN, 'podman');
  tmp = await tempRoot('podman');
  cgroups = prepareCgroupParent(uniqueName('corral-e2e'));
  cgroupParent = cgroups.path;
  maker = new Corral(path.join(tmp, 'corral'));
  reader = new Corral(path.join(tmp, 'corral-reader'));
  await maker.must(['run', '--rm', 'busybox', 'true']);
});

afterAll(async () => {
  const problems: string[] = [];
  for (const c of [maker, reader]) await c?.removeContainers().catch(() => {});
  if (tmp) {
    if (existsSync(path.join(tmp, 'storage'))) {
      const r = await exec(PODMAN, [...global(), 'system', 'reset', '-f']);
      if (r.status !== 0) problems.push(`podman system reset: ${r.stderr}`);
    }
    await unmountUnder(tmp).catch((e) => problems.push(String(e)));
    if (cgroups) problems.push(...cgroups.cleanup());
    if (!mountsUnder(tmp).length) await fs.rm(tmp, { recursive: true, force: true });
  }
  if (problems.length) throw new Error(`podman teardown: ${problems.join('\n')}`);
});

describe('corral save -> podman load', () => {
  it('podman loads the embedded busybox with the image ID and manifest digest corral shows', async () => {
    await maker.must(['tag', 'busybox', 'e2e/busybox:1']);
    const archive = path.join(tmp, 'busybox.tar');
    await maker.must(['save', '-o', archive, 'e2e/busybox:1']);
    expect((await podman(['load', '-i', archive])).out).toContain('e2e/busybox:1');
    const mine = await maker.image('e2e/busybox:1');
    const theirs = (await podmanImages()).find((i) => i.Names?.some((n) => n.endsWith('/e2e/busybox:1')));
    expect(theirs).toBeDefined();
    expect(`sha256:${theirs!.Id}`).toBe(mine.id);
    expect(theirs!.Digest).toBe(mine.manifestDigest);
  });

  it('podman runs an image made by corral commit (with the ulimits this machine allows)', async () => {
    const archive = path.join(tmp, 'made.tar');
    const id = await maker.makeCommittedImage(archive);
    await podman(['load', '-i', archive]);
    const theirs = (await podmanImages()).find((i) => `sha256:${i.Id}` === id);
    expect(theirs?.Names?.some((n) => n.endsWith('/e2e/made:1'))).toBe(true);
    const r = await podmanRun(id.slice(7), [
      'sh',
      '-c',
      'cat /made; test -e /bin/vi && echo vi-still-there || echo vi-gone',
    ]);
    expect(r.out).toBe('made\nvi-gone');
  });
});

describe('podman save -> corral load', () => {
  for (const format of ['docker-archive', 'oci-archive']) {
    it(`corral loads podman save --format ${format} and runs it`, async () => {
      const id = (await maker.image('e2e/made:1')).id;
      const archive = path.join(tmp, `podman-${format}.tar`);
      await podman(['save', '--format', format, '-o', archive, 'docker.io/e2e/made:1']);
      const loaded = (await reader.must(['load', '-i', archive])).out;
      expect(loaded).toMatch(/^Loaded image/);
      const image = (await reader.images()).find((i) => i.id === id);
      expect(image, `corral images after loading ${format}: ${loaded}`).toBeDefined();
      const r = await reader.must([
        'run',
        '--rm',
        id,
        'sh',
        '-c',
        'cat /made; test -e /bin/vi || echo vi-gone',
      ]);
      expect(r.out).toBe('made\nvi-gone');
      await reader.must(['rmi', '-f', id]);
    });
  }
});
