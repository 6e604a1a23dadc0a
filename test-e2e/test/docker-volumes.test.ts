// The same `run` lines with -v, --mount, --tmpfs and --volumes-from through the docker CLI on
// Debian's dockerd (20.10) and through corral, side by side: what the containers see and what
// lands on the host must be the same. Bad flags must fail in both, with exit code 125.
import { promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';
import { imageArchive } from '@corral/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PrivateDockerd, startPrivateDockerd } from './dockerd.js';
import { Corral, type Result, tempRoot } from './helpers.js';

let tmp = '';
let dockerd: PrivateDockerd | undefined;
let corral: Corral;

/** Two engines behind one call: the line runs in each, with host paths of its own. */
interface Engine {
  name: 'docker' | 'corral';
  /** A host folder for this engine's binds. */
  host: string;
  run(args: string[]): Promise<Result>;
}
let engines: Engine[] = [];

beforeAll(async () => {
  tmp = await tempRoot('docker-volumes');
  dockerd = await startPrivateDockerd(path.join(tmp, 'dockerd'));
  corral = new Corral(path.join(tmp, 'corral'), dockerd.env);
  // One image with content at a VOLUME path, loaded into both.
  const archive = imageArchive(path.join(tmp, 'image'), {
    tag: 'e2e/vol:1',
    files: { 'data/seed.txt': 'seed\n', 'data/sub/deep.txt': 'deep\n' },
    volumes: ['/data'],
  });
  await corral.must(['load', '-i', archive]);
  await corral.must(['run', '--rm', 'busybox', 'true']); // the embedded busybox, stored
  const bb = path.join(tmp, 'busybox.tar');
  await corral.must(['save', '-o', bb, 'busybox']);
  for (const a of [archive, bb]) {
    const r = await dockerd.docker(['load', '-i', a]);
    if (r.status !== 0) throw new Error(`docker load: ${r.stderr}`);
  }
  const d = dockerd;
  engines = [
    {
      name: 'docker',
      host: path.join(tmp, 'host-docker'),
      // `run` gets --pull never from the helper; no network is needed here.
      run: (args) => d.docker(args[0] === 'run' ? ['run', '--network', 'none', ...args.slice(1)] : args),
    },
    { name: 'corral', host: path.join(tmp, 'host-corral'), run: (args) => corral.run(args) },
  ];
  for (const e of engines) await fs.mkdir(e.host);
}, 180_000);

afterAll(async () => {
  const problems: string[] = [];
  for (const e of engines) {
    const ids = (await e.run(['ps', '-aq'])).out.split('\n').filter(Boolean);
    if (ids.length) await e.run(['rm', '-f', '-v', ...ids]);
    const vols = (await e.run(['volume', 'ls', '-q'])).out.split('\n').filter(Boolean);
    if (vols.length) await e.run(['volume', 'rm', '-f', ...vols]);
  }
  await corral?.removeContainers().catch((e) => problems.push(String(e)));
  await dockerd?.stop().catch((e) => problems.push(String(e)));
  if (tmp) await fs.rm(tmp, { recursive: true, force: true });
  if (problems.length) throw new Error(problems.join('\n'));
}, 120_000);

/** Runs the line (`{host}` stands for the engine's host folder) in both engines. */
async function both(args: string[]): Promise<Record<'docker' | 'corral', Result>> {
  const out = {} as Record<'docker' | 'corral', Result>;
  for (const e of engines) out[e.name] = await e.run(args.map((a) => a.replaceAll('{host}', e.host)));
  return out;
}

/** Both engines exit 0 with the same output. */
async function same(args: string[]): Promise<string> {
  const r = await both(args);
  expect({ status: r.corral.status, out: r.corral.out }).toEqual({
    status: r.docker.status,
    out: r.docker.out,
  });
  expect(r.docker.status, r.docker.stderr).toBe(0);
  return r.docker.out;
}

/** Both engines create the container (each prints its own id). */
async function created(args: string[]): Promise<void> {
  const r = await both(args);
  for (const e of engines) expect(r[e.name].out, `${e.name}: ${r[e.name].stderr}`).toMatch(/^[0-9a-f]{64}$/);
}

const volumeCount = async (e: Engine) =>
  (await e.run(['volume', 'ls', '-q'])).out.split('\n').filter(Boolean).length;

describe('the same run lines in docker and corral', () => {
  it('-v HOST:CTR: a missing host folder is made, the file written inside is on the host', async () => {
    const out = await same([
      'run',
      '--rm',
      '-v',
      '{host}/made:/out',
      'busybox',
      'sh',
      '-c',
      'echo hi > /out/f; cat /out/f',
    ]);
    expect(out).toBe('hi');
    for (const e of engines) expect(readFileSync(path.join(e.host, 'made', 'f'), 'utf8')).toBe('hi\n');
  });

  it('-v HOST:CTR:ro and --mount readonly: writes fail with EROFS', async () => {
    const out = await same([
      'run',
      '--rm',
      '-v',
      '{host}:/ro:ro',
      '--mount',
      'type=bind,src={host},dst=/ro2,readonly',
      'busybox',
      'sh',
      '-c',
      'touch /ro/x 2>&1; touch /ro2/x 2>&1; echo done',
    ]);
    expect(out).toBe('touch: /ro/x: Read-only file system\ntouch: /ro2/x: Read-only file system\ndone');
  });

  it('-v NAME:CTR fills a new named volume from the image and keeps it for the next container', async () => {
    await same(['run', '--rm', '-v', 'named1:/data', 'e2e/vol:1', 'sh', '-c', 'echo added > /data/added']);
    const out = await same([
      'run',
      '--rm',
      '-v',
      'named1:/data',
      'busybox',
      'sh',
      '-c',
      'ls -R /data; cat /data/seed.txt',
    ]);
    expect(out).toContain('added');
    expect(out).toContain('seed.txt');
    await same(['volume', 'rm', 'named1']);
  });

  it('volume-nocopy leaves the new volume empty', async () => {
    const out = await same([
      'run',
      '--rm',
      '--mount',
      'type=volume,src=nocopy1,dst=/data,volume-nocopy',
      'e2e/vol:1',
      'sh',
      '-c',
      'ls -A /data | wc -l',
    ]);
    expect(out).toBe('0');
    await same(['volume', 'rm', 'nocopy1']);
  });

  it("the image's VOLUME and -v CTR are anonymous volumes, gone with --rm; rm -v removes them", async () => {
    const before = await Promise.all(engines.map(volumeCount));
    await same([
      'run',
      '--rm',
      '-v',
      '/anon',
      'e2e/vol:1',
      'sh',
      '-c',
      'cat /data/seed.txt; echo x > /anon/f',
    ]);
    expect(await Promise.all(engines.map(volumeCount))).toEqual(before);
    await created(['create', '--name', 'anon-holder', '-v', '/anon', 'e2e/vol:1', 'true']);
    const made = await Promise.all(engines.map(volumeCount));
    expect(made).toEqual(before.map((n) => n + 2));
    await both(['rm', '-v', 'anon-holder']);
    expect(await Promise.all(engines.map(volumeCount))).toEqual(before);
  });

  it('--tmpfs and --mount type=tmpfs: the same options, size and mode', async () => {
    const out = await same([
      'run',
      '--rm',
      '--tmpfs',
      '/t1:size=1m,mode=700',
      '--mount',
      'type=tmpfs,dst=/t2,tmpfs-size=2097152,tmpfs-mode=1770',
      'busybox',
      'sh',
      '-c',
      "stat -c %a /t1 /t2; grep -E ' /t[12] ' /proc/mounts | cut -d' ' -f2-4 | sort",
    ]);
    expect(out.split('\n').slice(0, 2)).toEqual(['700', '1770']);
  });

  it('--volumes-from sees the same data, read-only with :ro', async () => {
    await created(['create', '--name', 'vf-src', '-v', 'vf1:/shared', 'busybox', 'true']);
    await same(['run', '--rm', '--volumes-from', 'vf-src', 'busybox', 'sh', '-c', 'echo shared > /shared/f']);
    const out = await same([
      'run',
      '--rm',
      '--volumes-from',
      'vf-src:ro',
      'busybox',
      'sh',
      '-c',
      'cat /shared/f; touch /shared/g 2>&1; true',
    ]);
    expect(out).toBe('shared\ntouch: /shared/g: Read-only file system');
    await same(['rm', 'vf-src']);
    await same(['volume', 'rm', 'vf1']);
  });

  it('diff leaves volume, bind and tmpfs content out', async () => {
    await same([
      'run',
      '--name',
      'differ',
      '-v',
      '/anon',
      '-v',
      '{host}:/hb',
      '--tmpfs',
      '/tm',
      'busybox',
      'sh',
      '-c',
      'echo a > /anon/in-volume; echo b > /hb/in-bind; echo c > /tm/in-tmpfs; echo d > /in-layer',
    ]);
    const r = await both(['diff', 'differ']);
    for (const e of engines) {
      const lines = r[e.name].out.split('\n');
      expect(lines, e.name).toContain('A /in-layer');
      expect(
        lines.filter((l) => /in-(volume|bind|tmpfs)/.test(l)),
        e.name,
      ).toEqual([]);
    }
    await both(['rm', '-v', 'differ']);
  });
});

describe('bad flags fail in both with 125 and create nothing', () => {
  it.each([
    [['--mount', 'type=bind,src=/tmp,dst=/x,colour=red'], /colour/],
    [['--mount', 'type=bind,src=/tmp,dst=relative'], /must be absolute/],
    [['--mount', 'type=bind,src=/nonexistent-e2e-dir,dst=/x'], /bind source path does not exist/],
    [['-v', 'a/b:/x'], /includes invalid characters for a local volume name/],
  ])('%j', async (flags, message) => {
    const before = await Promise.all(
      engines.map(async (e) => [(await e.run(['ps', '-aq'])).out, await volumeCount(e)]),
    );
    const r = await both(['run', '--rm', ...flags, 'busybox', 'true']);
    for (const e of engines) {
      expect(r[e.name].status, e.name).toBe(125);
      expect(r[e.name].stderr, e.name).toMatch(message);
    }
    const after = await Promise.all(
      engines.map(async (e) => [(await e.run(['ps', '-aq'])).out, await volumeCount(e)]),
    );
    expect(after).toEqual(before);
  });
});
