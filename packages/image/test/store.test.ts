import * as fs from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { Cleanups } from '@corral/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import {
  ContentStore,
  commit,
  ensureBusyboxImage,
  familiarName,
  ImageStore,
  importRootfs,
  MediaType,
  normalizeReference,
  sha256,
} from '../src/index.js';
import { makeTar, readTar } from './helpers.js';

const cleanup = new Cleanups();
afterEach(() => cleanup.run());
function newStore(): ImageStore {
  const tmp = cleanup.tempDir('image');
  return new ImageStore(join(tmp, 'image'));
}

/** Stores a one-layer image built from `entries`, gzip layer, OCI manifest. */
async function storeImage(
  store: ImageStore,
  entries: Parameters<typeof makeTar>[0],
  names: string[],
  diffIdOverride?: string,
) {
  const tarBytes = await makeTar(entries);
  const gz = gzipSync(tarBytes);
  const layer = await store.content.writeBlob(gz);
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      created: '2025-01-01T00:00:00Z',
      config: { Cmd: ['sh'] },
      rootfs: { type: 'layers', diff_ids: [diffIdOverride ?? sha256(tarBytes)] },
      history: [{ created: '2025-01-01T00:00:00Z', created_by: 'test' }],
    }),
  );
  const cfg = await store.content.writeBlob(config);
  const manifest = {
    schemaVersion: 2,
    mediaType: MediaType.OciManifest,
    config: { mediaType: MediaType.OciConfig, ...cfg },
    layers: [{ mediaType: MediaType.OciLayerGzip, ...layer }],
  };
  return store.importFromBlobs({ manifest: Buffer.from(JSON.stringify(manifest)), names });
}

describe('references', () => {
  it('normalizes docker names and shows short ones', () => {
    expect(normalizeReference('busybox')).toBe('docker.io/library/busybox:latest');
    expect(normalizeReference('user/app:1')).toBe('docker.io/user/app:1');
    expect(normalizeReference('localhost:5000/app')).toBe('localhost:5000/app:latest');
    expect(familiarName('docker.io/library/busybox:latest')).toBe('busybox:latest');
    expect(familiarName('quay.io/a/b:2')).toBe('quay.io/a/b:2');
    expect(() => normalizeReference('Bad Name')).toThrow(/invalid image reference/);
  });
});

describe('ContentStore', () => {
  it('stores by sha256, verifies, and refuses a mismatch naming both digests', async () => {
    const tmp = cleanup.tempDir('image');
    const cs = new ContentStore(tmp);
    const info = await cs.writeBlob(Readable.from([Buffer.from('hello')]));
    expect(info).toEqual({ digest: sha256('hello'), size: 5 });
    expect(cs.hasBlob(info.digest)).toBe(true);
    expect(fs.readFileSync(cs.blobPath(info.digest), 'utf8')).toBe('hello');
    const wrong = sha256('other');
    const err = await cs.writeBlob(Buffer.from('hello!'), { digest: wrong }).catch((e) => e);
    expect(err).toMatchObject({ code: 'DIGEST_MISMATCH' });
    expect(err.message).toContain(wrong);
    expect(err.message).toContain(sha256('hello!'));
    expect(cs.hasBlob(sha256('hello!'))).toBe(false);
    await expect(cs.writeBlob(Buffer.from('abc'), { size: 2 })).rejects.toMatchObject({
      code: 'SIZE_MISMATCH',
    });
    expect(fs.readdirSync(cs.tmpDir)).toEqual([]);
    expect(() => cs.blobPath('sha256:../../etc')).toThrow(/invalid digest/);
  });

  it('streams a big blob in small pieces (batched writes in flight), and refuses or drops it whole', async () => {
    const tmp = cleanup.tempDir('image');
    const cs = new ContentStore(tmp);
    // 9 MiB in 7,000-byte pieces: batched writev calls, several in flight.
    const data = Buffer.alloc(9 * 1024 * 1024);
    for (let i = 0; i < data.length; i += 4) data.writeUInt32LE((i * 2654435761) >>> 0, i);
    const pieces = () => {
      const out: Buffer[] = [];
      for (let i = 0; i < data.length; i += 7000) out.push(data.subarray(i, i + 7000));
      return out;
    };
    const digest = sha256(data);
    const info = await cs.writeBlob(Readable.from(pieces()), { digest, size: data.length });
    expect(info).toEqual({ digest, size: data.length });
    expect(sha256(fs.readFileSync(cs.blobPath(digest)))).toBe(digest);
    cs.deleteBlob(digest);

    const wrong = sha256('something else');
    const err = await cs
      .writeBlob(Readable.from(pieces()), { digest: wrong, size: data.length })
      .catch((e) => e);
    expect(err).toMatchObject({ code: 'DIGEST_MISMATCH' });
    expect(err.message).toContain(wrong);
    expect(err.message).toContain(digest);

    // A source that fails half way: nothing stored, no temp file left.
    async function* broken() {
      yield* pieces().slice(0, 700);
      throw new Error('connection lost');
    }
    await expect(cs.writeBlob(broken(), { digest, size: data.length })).rejects.toThrow(/connection lost/);
    expect(cs.listBlobs()).toEqual([]);
    expect(fs.readdirSync(cs.tmpDir)).toEqual([]);
  });
});

describe('ImageStore', () => {
  it('registers an image from blobs, unpacks its layer once, resolves names and IDs', async () => {
    const store = newStore();
    const rec = await storeImage(store, [{ name: 'hello.txt', body: 'hi' }], ['app:1', 'localhost:5000/app']);
    expect(store.get('app:1').id).toBe(rec.id);
    expect(store.get('docker.io/library/app:1').id).toBe(rec.id);
    expect(store.get(rec.id.slice(7, 19)).id).toBe(rec.id);
    expect(store.get(rec.manifestDigest).id).toBe(rec.id);
    const [dir] = store.layerDirs('app:1');
    expect(fs.readFileSync(join(dir, 'hello.txt'), 'utf8')).toBe('hi');
    expect(store.list()[0].repoTags.sort()).toEqual(['app:1', 'localhost:5000/app:latest']);
    const blobs = store.imageBlobs('app:1');
    expect(blobs.manifest.digest).toBe(rec.manifestDigest);
    expect(blobs.layers[0].mediaType).toBe(MediaType.OciLayerGzip);
    expect(store.check()).toEqual([]);
    await expect(store.importFromBlobs({ manifestDigest: rec.manifestDigest })).resolves.toMatchObject({
      id: rec.id,
    });
    expect(fs.readdirSync(store.layersRoot)).toHaveLength(1);
  });

  it('refuses a layer whose diff ID does not match, with both digests, storing no image', async () => {
    const store = newStore();
    const fake = sha256('not the layer');
    const err = await storeImage(store, [{ name: 'x', body: 'x' }], ['bad:1'], fake).catch((e) => e);
    expect(err).toMatchObject({ code: 'DIGEST_MISMATCH' });
    expect(err.message).toContain(fake);
    expect(store.resolve('bad:1')).toBeUndefined();
    expect(store.records()).toEqual([]);
    expect(fs.readdirSync(store.layersRoot)).toEqual([]);
  });

  it('two concurrent imports sharing a layer unpack it once', async () => {
    const store = newStore();
    const other = new ImageStore(store.root);
    const [a, b] = await Promise.all([
      storeImage(store, [{ name: 'shared', body: 's' }], ['a:1']),
      storeImage(other, [{ name: 'shared', body: 's' }], ['b:1']),
    ]);
    expect(a.id).toBe(b.id);
    expect(fs.readdirSync(store.layersRoot)).toHaveLength(1);
    expect(store.list()[0].repoTags.sort()).toEqual(['a:1', 'b:1']);
    expect(store.check()).toEqual([]);
  });

  it('tag, untag, rmi (refused while in use unless forced), prune', async () => {
    const store = newStore();
    const rec = await storeImage(store, [{ name: 'f', body: '1' }], ['one:1']);
    await store.tag('one:1', 'two:2');
    expect(store.namesOf(rec.manifestDigest).map(familiarName).sort()).toEqual(['one:1', 'two:2']);
    await expect(store.remove(rec.id)).rejects.toMatchObject({ code: 'CONFLICT' });
    expect(await store.remove('two:2')).toEqual({ untagged: ['two:2'], deleted: [] });
    const inUse = () => true;
    await expect(store.remove('one:1', { isInUse: inUse })).rejects.toMatchObject({ code: 'IN_USE' });
    expect(store.resolve('one:1')).toBeDefined();
    const removed = await store.remove('one:1', { isInUse: inUse, force: true });
    expect(removed.deleted).toEqual([rec.id]);
    // A stopped container still uses it: hidden, its layers kept until that container goes.
    expect(store.resolve('one:1')).toBeUndefined();
    expect(store.list()).toEqual([]);
    expect(store.record(rec.id)?.removed).toBeTruthy();
    expect(fs.readdirSync(store.layersRoot)).toHaveLength(1);
    await store.release(rec.id);
    expect(store.records()).toEqual([]);
    expect(store.content.listBlobs()).toEqual([]);
    expect(fs.readdirSync(store.layersRoot)).toEqual([]);
    await expect(store.untag('one:1')).rejects.toMatchObject({ code: 'NOT_FOUND' });

    const dangling = await storeImage(store, [{ name: 'g', body: '2' }], []);
    const kept = await storeImage(store, [{ name: 'h', body: '3' }], ['kept:1']);
    const pruned = await store.prune();
    expect(pruned.deletedImages).toEqual([dangling.id]);
    expect(pruned.deletedLayers).toHaveLength(1);
    expect(store.get('kept:1').id).toBe(kept.id);
    expect(store.check()).toEqual([]);
  });

  it('inspect and history look like docker', async () => {
    const store = newStore();
    const rec = await storeImage(store, [{ name: 'f', body: '1' }], ['ins:1']);
    const info = await store.inspect('ins:1');
    expect(info).toMatchObject({ Id: rec.id, RepoTags: ['ins:1'], Os: 'linux', Config: { Cmd: ['sh'] } });
    expect(info.RepoDigests).toEqual([`ins@${rec.manifestDigest}`]);
    const hist = await store.history('ins:1');
    expect(hist).toEqual([expect.objectContaining({ id: rec.id, createdBy: 'test', emptyLayer: false })]);
  });

  it('imports a rootfs tarball and commits an upper layer on top', async () => {
    const store = newStore();
    const rootfs = gzipSync(
      await makeTar([
        { name: 'etc/', type: 'directory' },
        { name: 'etc/os', body: 'tiny' },
      ]),
    );
    const tmp = cleanup.tempDir('image');
    fs.writeFileSync(join(tmp, 'rootfs.tgz'), rootfs);
    const base = await importRootfs(store, join(tmp, 'rootfs.tgz'), {
      names: ['tiny:1'],
      config: { Cmd: ['/bin/true'] },
    });
    expect(base.layers[0].mediaType).toBe(MediaType.OciLayerGzip);
    expect(fs.readFileSync(join(store.layerDirs('tiny:1')[0], 'etc/os'), 'utf8')).toBe('tiny');

    const upper = join(tmp, 'upper');
    fs.mkdirSync(join(upper, 'etc'), { recursive: true });
    fs.writeFileSync(join(upper, 'etc/added'), 'new');
    const committed = await commit(store, {
      base: 'tiny:1',
      upperDir: upper,
      names: ['tiny:2'],
      message: 'add a file',
      author: 'me',
    });
    const dirs = store.layerDirs('tiny:2');
    expect(dirs).toHaveLength(2);
    expect(dirs[0]).toBe(store.layerDirs('tiny:1')[0]);
    expect(fs.readFileSync(join(dirs[1], 'etc/added'), 'utf8')).toBe('new');
    const cfg = await store.config('tiny:2');
    expect(cfg.config?.Cmd).toEqual(['/bin/true']);
    expect(cfg.author).toBe('me');
    expect(cfg.history?.at(-1)?.comment).toBe('add a file');
    expect(committed.id).not.toBe(base.id);
    expect(store.check()).toEqual([]);
  });

  it('refuses a rootfs tarball that is no tar, storing nothing', async () => {
    const store = newStore();
    const err = await importRootfs(store, Readable.from([gzipSync(Buffer.alloc(4096, 7))]), {
      names: ['x:1'],
    }).catch((e) => e);
    expect(err).toMatchObject({ code: 'BAD_LAYER' });
    expect(store.records()).toEqual([]);
    expect(store.content.listBlobs()).toEqual([]);
  });
});

describe('ensureBusyboxImage', () => {
  it('builds busybox from busybox-static with a stable digest, loaded once', async () => {
    const a = newStore();
    const b = newStore();
    const ra = await ensureBusyboxImage(a);
    const rb = await ensureBusyboxImage(b);
    expect(ra.manifestDigest).toBe(rb.manifestDigest);
    expect(await ensureBusyboxImage(a)).toEqual(ra);
    const [dir] = a.layerDirs('busybox');
    expect(fs.statSync(join(dir, 'bin/busybox')).mode & 0o111).toBe(0o111);
    expect(fs.readlinkSync(join(dir, 'bin/sh'))).toBe('busybox');
    expect(fs.readFileSync(join(dir, 'etc/passwd'), 'utf8')).toMatch(/^root:x:0:0:/);
    expect(fs.statSync(join(dir, 'tmp')).mode & 0o7777).toBe(0o1777);
    const cfg = await a.config('busybox');
    expect(cfg.config?.Cmd).toEqual(['sh']);
    const entries = await readTar(a.content.openBlob(ra.layers[0].digest));
    expect(new Set(entries.map((e) => e.header.mtime?.getTime()))).toEqual(
      new Set([Date.parse('2024-01-01T00:00:00Z')]),
    );
  });
});
