import * as fs from 'node:fs';
import { join } from 'node:path';
import { Cleanups } from '@corral/testkit';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ImageStore, MediaType, pushFromStore, RegistryClient, saveArchive } from '../src/index.js';
import { storeOneLayerImage } from './helpers.js';
import { startRegistry, type TestRegistry } from './registry-server.js';

// Issue 17: save shipped a blob damaged in the store and exited 0; only a later load noticed.

const cleanup = new Cleanups();
afterEach(() => cleanup.run());

function storeImage(store: ImageStore, gzip: boolean) {
  return storeOneLayerImage(store, { body: 'x'.repeat(5000), names: ['v:1'], gzip });
}

/** Flips one byte in the middle of a stored blob, keeping its size. */
function flip(store: ImageStore, digest: string): void {
  const path = store.content.blobPath(digest);
  const bytes = fs.readFileSync(path);
  const at = Math.floor(bytes.length / 2);
  bytes[at] = bytes[at]! ^ 0xff;
  fs.writeFileSync(path, bytes);
}

const save = (store: ImageStore) =>
  saveArchive(store, ['v:1'], fs.createWriteStream(join(cleanup.tempDir('save-out'), 'out.tar')));

describe('save checks each blob while it streams out', () => {
  it('fails naming an uncompressed layer blob whose bytes were damaged', async () => {
    const store = new ImageStore(join(cleanup.tempDir('save'), 'image'));
    const rec = await storeImage(store, false);
    await save(store); // whole: saves
    flip(store, rec.layers[0]!.digest);
    const err = await save(store).catch((e) => e);
    expect(err).toMatchObject({ code: 'DIGEST_MISMATCH' });
    expect(err.message).toContain(`blob ${rec.layers[0]!.digest}`);
  });

  it('fails naming a damaged config blob', async () => {
    const store = new ImageStore(join(cleanup.tempDir('save'), 'image'));
    const rec = await storeImage(store, false);
    flip(store, rec.configDigest);
    const err = await save(store).catch((e) => e);
    expect(err).toMatchObject({ code: 'DIGEST_MISMATCH' });
    expect(err.message).toContain(`blob ${rec.configDigest}`);
  });

  it('fails naming a damaged compressed layer (uncompressed for the archive)', async () => {
    const store = new ImageStore(join(cleanup.tempDir('save'), 'image'));
    const rec = await storeImage(store, true);
    flip(store, rec.layers[0]!.digest);
    const err = await save(store).catch((e) => e);
    expect(err).toBeInstanceOf(Error);
    expect(err.message).toContain(rec.layers[0]!.digest);
  });
});

describe('push checks each blob while it streams out', () => {
  let registry: TestRegistry;
  beforeAll(async () => {
    registry = await startRegistry();
  });
  afterAll(() => registry?.stop());

  it('fails naming the damaged layer blob, and the registry keeps no manifest', async () => {
    const store = new ImageStore(join(cleanup.tempDir('push'), 'image'));
    const rec = await storeImage(store, true);
    flip(store, rec.layers[0]!.digest);
    const client = new RegistryClient({ configPath: join(cleanup.tempDir('push-cfg'), 'config.json') });
    const remote = `${registry.host}/damaged/image:v1`;
    const err = await pushFromStore(client, store, 'v:1', remote).catch((e) => e);
    expect(err).toMatchObject({ code: 'DIGEST_MISMATCH' });
    expect(err.message).toContain(`blob ${rec.layers[0]!.digest}`);
    const res = await fetch(`http://${registry.host}/v2/damaged/image/manifests/v1`, {
      headers: { Accept: MediaType.OciManifest },
    });
    expect(res.status).toBe(404);
  });
});
