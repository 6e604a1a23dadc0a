import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { Cleanups, removeTree, tempDir } from '@corral/testkit';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  commit,
  ensureBusyboxImage,
  ImageStore,
  loadArchive,
  MediaType,
  saveArchive,
  sha256,
} from '../src/index.js';
import { makeTar, readTar } from './helpers.js';

// skopeo (Debian package) is the independent implementation these tests compare with.
const cleanup = new Cleanups();
afterEach(() => cleanup.run());
function dir(): string {
  return cleanup.tempDir('image');
}
const skopeo = (...args: string[]) =>
  execFileSync('skopeo', ['--insecure-policy', ...args], { encoding: 'utf8' });

async function save(store: ImageStore, refs: string[], file: string): Promise<void> {
  await saveArchive(store, refs, fs.createWriteStream(file));
}

/** A store holding busybox plus a committed second layer (app:1), to test multi-layer images. */
let fixture: { root: string; store: ImageStore; archive: string; busyboxId: string; appId: string };
beforeAll(async () => {
  // Kept for the whole file; removed by the teardown this hook returns.
  const root = tempDir('image');
  const store = new ImageStore(join(root, 'image'));
  const bb = await ensureBusyboxImage(store);
  const upper = join(root, 'upper');
  fs.mkdirSync(join(upper, 'srv'), { recursive: true });
  fs.writeFileSync(join(upper, 'srv/index.html'), '<h1>hi</h1>');
  const app = await commit(store, {
    base: 'busybox',
    upperDir: upper,
    names: ['app:1'],
    config: { Cmd: ['cat', '/srv/index.html'] },
  });
  const archive = join(root, 'save.tar');
  await save(store, ['busybox:latest', 'app:1'], archive);
  fixture = { root, store, archive, busyboxId: bb.id, appId: app.id };
  return () => removeTree(root);
});

describe('saveArchive', () => {
  it('writes the Docker 25+ layout: manifest.json, index.json, oci-layout, uncompressed layers', async () => {
    const entries = await readTar(fs.createReadStream(fixture.archive));
    const names = entries.map((e) => e.header.name);
    expect(names).toEqual(expect.arrayContaining(['manifest.json', 'index.json', 'oci-layout']));
    const manifest = JSON.parse(entries.find((e) => e.header.name === 'manifest.json')!.body.toString());
    expect(manifest.map((m: { RepoTags: string[] }) => m.RepoTags)).toEqual([['busybox:latest'], ['app:1']]);
    const app = manifest[1];
    expect(app.Config).toBe(`blobs/sha256/${fixture.appId.slice(7)}`);
    const cfg = await fixture.store.config('app:1');
    // Layers are stored uncompressed: their file names are the diff IDs.
    expect(app.Layers).toEqual(cfg.rootfs.diff_ids.map((d) => `blobs/sha256/${d.slice(7)}`));
    for (const e of entries.filter(
      (x) => x.header.name.startsWith('blobs/sha256/') && x.header.type === 'file',
    )) {
      expect(sha256(e.body)).toBe(`sha256:${e.header.name.slice(13)}`);
    }
  });

  it('skopeo reads it as docker-archive and as OCI archive, with the same config digests', () => {
    const out = dir();
    skopeo('copy', `docker-archive:${fixture.archive}:app:1`, `oci:${join(out, 'oci')}:app`);
    const index = JSON.parse(fs.readFileSync(join(out, 'oci/index.json'), 'utf8'));
    const manifest = JSON.parse(
      fs.readFileSync(join(out, 'oci/blobs/sha256', index.manifests[0].digest.slice(7)), 'utf8'),
    );
    expect(manifest.config.digest).toBe(fixture.appId);
    const raw = skopeo('inspect', '--raw', '--config', `oci-archive:${fixture.archive}:latest`);
    expect(sha256(raw.trimEnd())).toBe(fixture.busyboxId);
    // umoci, a third implementation, unpacks skopeo's copy into a working rootfs.
    execFileSync('umoci', ['unpack', '--image', `${join(out, 'oci')}:app`, join(out, 'bundle')]);
    expect(fs.readFileSync(join(out, 'bundle/rootfs/srv/index.html'), 'utf8')).toBe('<h1>hi</h1>');
    expect(fs.readlinkSync(join(out, 'bundle/rootfs/bin/sh'))).toBe('busybox');
  });

  it('round-trips through another store with the same image IDs', async () => {
    const other = new ImageStore(join(dir(), 'image'));
    const result = await loadArchive(other, fixture.archive);
    expect(result.format).toBe('docker-archive');
    expect(result.images.map((i) => i.names)).toEqual([['busybox:latest'], ['app:1']]);
    expect(other.get('app:1').id).toBe(fixture.appId);
    expect(other.get('busybox').id).toBe(fixture.busyboxId);
    expect(fs.readFileSync(join(other.layerDirs('app:1')[1], 'srv/index.html'), 'utf8')).toBe('<h1>hi</h1>');
    expect(other.check()).toEqual([]);
  });
});

describe('loadArchive', () => {
  it('loads the classic docker-archive skopeo writes, with the same image ID', async () => {
    const out = dir();
    const classic = join(out, 'classic.tar');
    skopeo(
      'copy',
      `docker-archive:${fixture.archive}:app:1`,
      `docker-archive:${classic}:example.com/team/app:2`,
    );
    const names = (await readTar(fs.createReadStream(classic))).map((e) => e.header.name);
    expect(names).not.toContain('index.json');
    const store = new ImageStore(join(out, 'image'));
    const result = await loadArchive(store, classic);
    expect(result.images).toEqual([
      expect.objectContaining({ id: fixture.appId, names: ['example.com/team/app:2'] }),
    ]);
    expect(store.get('example.com/team/app:2').layers.map((l) => l.mediaType)).toEqual([
      MediaType.OciLayer,
      MediaType.OciLayer,
    ]);
    expect(store.check()).toEqual([]);
  });

  it('loads an OCI layout archive with gzip layers (skopeo oci-archive), naming it from ref.name', async () => {
    const out = dir();
    const ociArchive = join(out, 'oci.tar');
    skopeo(
      'copy',
      '--dest-compress',
      '--dest-compress-format',
      'gzip',
      `docker-archive:${fixture.archive}:app:1`,
      `oci-archive:${ociArchive}:quay.io/x/app:3`,
    );
    const store = new ImageStore(join(out, 'image'));
    const result = await loadArchive(store, ociArchive);
    expect(result.format).toBe('oci-layout');
    expect(result.images[0].id).toBe(fixture.appId);
    expect(result.images[0].names).toEqual(['quay.io/x/app:3']);
    expect(store.get('quay.io/x/app:3').layers.every((l) => l.mediaType === MediaType.OciLayerGzip)).toBe(
      true,
    );
  });

  it('refuses an archive with a corrupt layer, with both digests, leaving the store as it was', async () => {
    const out = dir();
    const bad = join(out, 'bad.tar');
    const data = fs.readFileSync(fixture.archive);
    // Flip a byte inside the busybox binary (the largest file) of the archive.
    const at = data.indexOf(Buffer.from('BusyBox is copyrighted'));
    expect(at).toBeGreaterThan(0);
    data[at] ^= 0xff;
    fs.writeFileSync(bad, data);
    const store = new ImageStore(join(out, 'image'));
    await ensureBusyboxImage(store);
    const before = { blobs: store.content.listBlobs().sort(), records: store.records() };
    const err = await loadArchive(store, bad).catch((e) => e);
    expect(err).toMatchObject({ code: 'DIGEST_MISMATCH' });
    expect(err.message).toMatch(/sha256:[a-f0-9]{64}.*sha256:[a-f0-9]{64}/);
    expect(store.content.listBlobs().sort()).toEqual(before.blobs);
    expect(store.records()).toEqual(before.records);
    expect(store.resolve('app:1')).toBeUndefined();
    expect(store.check()).toEqual([]);
  });

  it('loads a hand-made pre-25 docker save: <id>/layer.tar, a symlinked duplicate layer, zstd-compressed', async () => {
    const layer = await makeTar([{ name: 'hello', body: 'world' }]);
    const diffId = sha256(layer);
    const config = JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: { Cmd: ['/hello'] },
      rootfs: { type: 'layers', diff_ids: [diffId, diffId] },
    });
    const configHex = sha256(config).slice(7);
    const id1 = 'a'.repeat(64);
    const id2 = 'b'.repeat(64);
    const manifest = JSON.stringify([
      {
        Config: `${configHex}.json`,
        RepoTags: ['old:save'],
        Layers: [`${id1}/layer.tar`, `${id2}/layer.tar`],
      },
    ]);
    const archive = await makeTar([
      { name: `${id1}/`, type: 'directory' },
      { name: `${id1}/VERSION`, body: '1.0' },
      { name: `${id1}/json`, body: '{}' },
      { name: `${id1}/layer.tar`, body: layer },
      { name: `${id2}/`, type: 'directory' },
      { name: `${id2}/layer.tar`, type: 'symlink', linkname: `../${id1}/layer.tar` },
      { name: `${configHex}.json`, body: config },
      { name: 'manifest.json', body: manifest },
      { name: 'repositories', body: JSON.stringify({ old: { save: id2 } }) },
    ]);
    const out = dir();
    const file = join(out, 'old.tar.zst');
    fs.writeFileSync(file, execFileSync('zstd', ['-q', '-c'], { input: archive }));
    const store = new ImageStore(join(out, 'image'));
    const result = await loadArchive(store, fs.createReadStream(file));
    expect(result.images).toEqual([
      expect.objectContaining({ id: `sha256:${configHex}`, names: ['old:save'] }),
    ]);
    const dirs = store.layerDirs('old:save');
    expect(dirs).toHaveLength(2);
    expect(dirs[0]).toBe(dirs[1]);
    expect(fs.readFileSync(join(dirs[0], 'hello'), 'utf8')).toBe('world');
    expect(store.check()).toEqual([]);
  });

  /** A two-layer image's parts as a Docker 25+ daemon writes them into `docker save`. */
  async function docker25Parts(compress: boolean) {
    const tars = [
      await makeTar([
        { name: 'etc/', type: 'directory' },
        { name: 'etc/os', body: 'base' },
      ]),
      await makeTar([{ name: 'app', body: 'app v1' }, { name: 'etc/.wh.os' }]),
    ];
    const layers = tars.map((t) => (compress ? gzipSync(t) : t));
    const config = Buffer.from(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        config: { Cmd: ['/app'] },
        rootfs: { type: 'layers', diff_ids: tars.map(sha256) },
      }),
    );
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.OciManifest,
        config: { mediaType: MediaType.OciConfig, digest: sha256(config), size: config.length },
        layers: layers.map((l) => ({
          mediaType: compress ? MediaType.OciLayerGzip : MediaType.OciLayer,
          digest: sha256(l),
          size: l.length,
        })),
      }),
    );
    const blobPath = (b: Buffer) => `blobs/sha256/${sha256(b).slice(7)}`;
    const blob = (b: Buffer) => ({ name: blobPath(b), body: b });
    /** index.json naming app:1 at `top` (a manifest or an index), manifest.json and oci-layout. */
    const layoutFiles = (top: Buffer, topType: string, legacyExtra: Record<string, unknown> = {}) => [
      {
        name: 'index.json',
        body: JSON.stringify({
          schemaVersion: 2,
          mediaType: MediaType.OciIndex,
          manifests: [
            {
              mediaType: topType,
              digest: sha256(top),
              size: top.length,
              annotations: {
                'io.containerd.image.name': 'docker.io/library/app:1',
                'org.opencontainers.image.ref.name': '1',
              },
            },
          ],
        }),
      },
      {
        name: 'manifest.json',
        body: JSON.stringify([
          { Config: blobPath(config), RepoTags: ['app:1'], Layers: layers.map(blobPath), ...legacyExtra },
        ]),
      },
      { name: 'oci-layout', body: '{"imageLayoutVersion":"1.0.0"}' },
    ];
    return { layers, config, manifest, blob, layoutFiles };
  }

  async function loadsDocker25(archive: Buffer, configDigest: string) {
    const out = dir();
    const store = new ImageStore(join(out, 'image'));
    const result = await loadArchive(store, Readable.from([archive]));
    expect(result.format).toBe('docker-archive');
    expect(result.images).toEqual([expect.objectContaining({ id: configDigest, names: ['app:1'] })]);
    const [lower, upper] = store.layerDirs('app:1');
    expect(fs.readFileSync(join(lower!, 'etc/os'), 'utf8')).toBe('base');
    expect(fs.readFileSync(join(upper!, 'app'), 'utf8')).toBe('app v1');
    // The OCI whiteout became overlayfs's: a 0/0 character device.
    expect(fs.statSync(join(upper!, 'etc/os')).rdev).toBe(0);
    expect(fs.statSync(join(upper!, 'etc/os')).isCharacterDevice()).toBe(true);
    expect(store.check()).toEqual([]);
  }

  it('loads what Docker 25+ saves from its classic store: OCI layout plus manifest.json, plain layers', async () => {
    const { layers, config, manifest, blob, layoutFiles } = await docker25Parts(false);
    const archive = await makeTar([
      { name: 'blobs/', type: 'directory' },
      { name: 'blobs/sha256/', type: 'directory' },
      ...[...layers, config, manifest].map(blob),
      ...layoutFiles(manifest, MediaType.OciManifest, { LayerSources: {} }),
      { name: 'repositories', body: JSON.stringify({ app: { '1': sha256(layers[1]!).slice(7) } }) },
    ]);
    await loadsDocker25(archive, sha256(config));
  });

  it('loads what Docker 29 saves from the containerd image store: nested index, gzip layers, absent platforms', async () => {
    const { layers, config, manifest, blob, layoutFiles } = await docker25Parts(true);
    // The image index lists another platform's image, this machine's and an attestation;
    // only this machine's blobs were saved (the others were never pulled).
    const here = process.arch === 'arm64' ? 'arm64' : 'amd64';
    const other = here === 'amd64' ? 'arm64' : 'amd64';
    const index = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.OciIndex,
        manifests: [
          {
            mediaType: MediaType.OciManifest,
            digest: sha256(Buffer.from('another platform')),
            size: 500,
            platform: { os: 'linux', architecture: other },
          },
          {
            mediaType: MediaType.OciManifest,
            digest: sha256(manifest),
            size: manifest.length,
            platform: { os: 'linux', architecture: here },
          },
          {
            mediaType: MediaType.OciManifest,
            digest: sha256(Buffer.from('attestation')),
            size: 800,
            platform: { os: 'unknown', architecture: 'unknown' },
            annotations: { 'vnd.docker.reference.type': 'attestation-manifest' },
          },
        ],
      }),
    );
    const archive = await makeTar([
      ...[...layers, config, manifest, index].map(blob),
      ...layoutFiles(index, MediaType.OciIndex),
    ]);
    await loadsDocker25(archive, sha256(config));
  });

  it('loads archives compressed with xz and bzip2 (as docker load does), and refuses a broken one', async () => {
    for (const [program, ext] of [
      ['xz', 'xz'],
      ['bzip2', 'bz2'],
    ] as const) {
      const file = join(dir(), 'archive.tar');
      fs.copyFileSync(fixture.archive, file);
      execFileSync(program, ['-f', file]);
      const store = new ImageStore(join(dir(), 'image'));
      const loaded = await loadArchive(store, `${file}.${ext}`);
      expect(loaded.images.map((i) => i.id).sort()).toEqual([fixture.busyboxId, fixture.appId].sort());
    }
    const broken = join(dir(), 'broken.tar.xz');
    const bytes = execFileSync('xz', ['-c', fixture.archive]);
    fs.writeFileSync(broken, bytes.subarray(0, bytes.length >> 1));
    const store = new ImageStore(join(dir(), 'image'));
    await expect(loadArchive(store, broken)).rejects.toThrow('xz could not decompress the data');
    expect(store.list()).toEqual([]);
  });

  it('refuses a tar that is no image archive', async () => {
    const out = dir();
    fs.writeFileSync(join(out, 'x'), 'x');
    execFileSync('tar', ['-cf', join(out, 'x.tar'), '-C', out, 'x']);
    const store = new ImageStore(join(out, 'image'));
    await expect(loadArchive(store, join(out, 'x.tar'))).rejects.toMatchObject({ code: 'BAD_ARCHIVE' });
    expect(store.content.listBlobs()).toEqual([]);
  });
});
