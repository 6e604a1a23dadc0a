// The registry client's failure modes against docker-registry (and a proxy that drops or
// rechunks answers): unknown names, corrupt and damaged blobs, aborts, dropped connections,
// layers unpacked early, an unreachable host. Nothing half-done may stay in a store.
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { tempDir } from '@corral/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient } from '../src/registry/client.js';
import { isRegistryError } from '../src/registry/errors.js';
import type { ProgressEvent } from '../src/registry/progress.js';
import { pullToStore } from '../src/registry/store.js';
import { ContentStore } from '../src/store/content.js';
import { ImageStore } from '../src/store/image-store.js';
import { parseReference } from '../src/store/reference.js';
import { buildImage, storeImage } from './registry-image.js';
import { sha256, startFlakyProxy, startRegistry, type TestRegistry } from './registry-server.js';

describe('registry client failures against docker-registry', () => {
  let registry: TestRegistry;
  let work: string;
  let client: RegistryClient;

  beforeAll(async () => {
    registry = await startRegistry();
    work = tempDir('registry-failures');
    client = new RegistryClient({ configPath: path.join(work, 'docker', 'config.json') });
  });

  afterAll(async () => {
    await registry?.stop();
    if (work) await fs.rm(work, { recursive: true, force: true });
  });

  it('names the reference when a manifest is unknown', async () => {
    const err = await client
      .getManifest(parseReference(`${registry.host}/corral/oci:missing`))
      .catch((e) => e);
    expect(isRegistryError(err, 'MANIFEST_UNKNOWN')).toBe(true);
    expect(err.message).toContain(`${registry.host}/corral/oci:missing`);
    const unknownRepo = await client
      .getManifest(parseReference(`${registry.host}/no/such:tag`))
      .catch((e) => e);
    expect(isRegistryError(unknownRepo, 'MANIFEST_UNKNOWN', 'NAME_UNKNOWN')).toBe(true);
    expect(unknownRepo.message).toContain(`${registry.host}/no/such:tag`);
  });

  it('refuses a layer whose bytes do not match its digest and stores nothing', async () => {
    const image = await buildImage({ format: 'oci', layers: [{ 'x/y': Buffer.alloc(10_000, 9) }] });
    const source = new ContentStore(path.join(work, 'push-corrupt'));
    await storeImage(source, image);
    const ref = parseReference(`${registry.host}/corrupt/image:v1`);
    await client.push(ref, { manifest: image.manifest }, source);
    // Damage the registry's copy of the layer, keeping its size.
    const layer = image.layers[0]!;
    const hex = layer.digest.slice(7);
    const file = path.join(
      registry.root,
      'data',
      'docker',
      'registry',
      'v2',
      'blobs',
      'sha256',
      hex.slice(0, 2),
      hex,
      'data',
    );
    const bytes = await fs.readFile(file);
    bytes[bytes.length - 20] = bytes[bytes.length - 20]! ^ 0xff;
    await fs.writeFile(file, bytes);
    const sink = new ContentStore(path.join(work, 'pull-corrupt'));
    const err = await client.pull(ref, sink).catch((e) => e);
    expect(isRegistryError(err, 'DIGEST_MISMATCH')).toBe(true);
    expect(err.message).toContain(layer.digest);
    expect(err.message).toContain(sha256(bytes));
    expect(sink.hasBlob(layer.digest)).toBe(false);
    expect(sink.listBlobs()).toEqual([]);
  });

  it('stops a pull when its signal is aborted and leaves no blob behind', async () => {
    const image = await buildImage({
      format: 'oci',
      layers: [{ big: randomBytes(4_000_000) }, { small: 's' }],
    });
    const source = new ContentStore(path.join(work, 'push-abort'));
    await storeImage(source, image);
    const ref = parseReference(`${registry.host}/abort/me:1`);
    await client.push(ref, { manifest: image.manifest }, source);
    const sink = new ContentStore(path.join(work, 'pull-abort'));
    const controller = new AbortController();
    const err = await client
      .pull(ref, sink, {
        concurrency: 1,
        signal: controller.signal,
        onProgress: (e) => {
          if (e.status === 'downloading' && e.current > 0) controller.abort();
        },
      })
      .catch((e) => e);
    expect(err).toBeInstanceOf(Error);
    expect(sink.listBlobs()).toEqual([]);
    expect(await fs.readdir(sink.tmpDir)).toEqual([]);
  });

  it('fetches a layer again when the connection drops half way, and gives up after three tries', async () => {
    const image = await buildImage({ format: 'oci', layers: [{ big: randomBytes(1_000_000) }] });
    const source = new ContentStore(path.join(work, 'push-flaky'));
    await storeImage(source, image);
    await client.push(parseReference(`${registry.host}/flaky/layer:1`), { manifest: image.manifest }, source);
    const layer = image.layers[0]!.digest;
    let drops = 1;
    const proxy = await startFlakyProxy(registry.host, (method, url) => {
      if (method !== 'GET' || !url.endsWith(`/blobs/${layer}`) || drops === 0) return false;
      drops--;
      return true;
    });
    try {
      const ref = parseReference(`${proxy.host}/flaky/layer:1`);
      const events: ProgressEvent[] = [];
      const sink = new ContentStore(path.join(work, 'pull-flaky'));
      const pulled = await client.pull(ref, sink, { onProgress: (e) => events.push(e) });
      expect(pulled.digest).toBe(image.digest);
      expect(proxy.dropped).toBe(1);
      expect(events.some((e) => e.status === 'retrying' && e.digest === layer)).toBe(true);
      expect(sink.hasBlob(layer)).toBe(true);

      drops = Number.POSITIVE_INFINITY;
      const again = new ContentStore(path.join(work, 'pull-flaky-2'));
      const err = await client.pull(ref, again).catch((e) => e);
      expect(isRegistryError(err, 'NETWORK')).toBe(true);
      expect(err.message).toContain(proxy.host);
      expect(proxy.dropped).toBe(4);
      expect(again.listBlobs()).toEqual([]);
    } finally {
      await proxy.stop();
    }
  });

  it('unpacks each layer as soon as it is in, and a diff ID that does not match fails the pull, registering nothing', async () => {
    const image = await buildImage({
      format: 'oci',
      layers: [{ a: randomBytes(200_000) }, { b: randomBytes(200_000) }, { c: 'c' }],
    });
    const source = new ContentStore(path.join(work, 'push-early'));
    await storeImage(source, image);
    await client.push(parseReference(`${registry.host}/early/good:1`), { manifest: image.manifest }, source);
    const store = new ImageStore(path.join(work, 'store-early'));
    const told: [string, string | undefined][] = [];
    const { record } = await pullToStore(client, store, `${registry.host}/early/good:1`, {
      onLayer: (layer, diffId) => told.push([layer.digest, diffId]),
    });
    expect(told.sort()).toEqual(image.layers.map((l) => [l.digest, l.diffId]).sort());
    expect(record.layers.map((l) => l.diffId)).toEqual(image.layers.map((l) => l.diffId));

    // The same layers under a config whose second diff ID is wrong: the pull fails on that
    // layer and no image is registered.
    const config = JSON.parse(image.config.toString());
    const wrongDiffId = sha256(Buffer.from('not this layer'));
    config.rootfs.diff_ids[1] = wrongDiffId;
    const configBytes = Buffer.from(JSON.stringify(config));
    const manifest = JSON.parse(image.manifest.toString());
    manifest.config = { ...manifest.config, digest: sha256(configBytes), size: configBytes.length };
    const manifestBytes = Buffer.from(JSON.stringify(manifest));
    await source.writeBlob(configBytes);
    await client.push(parseReference(`${registry.host}/early/bad:1`), { manifest: manifestBytes }, source);
    const fresh = new ImageStore(path.join(work, 'store-early-bad'));
    const err = await pullToStore(client, fresh, `${registry.host}/early/bad:1`).catch((e) => e);
    expect(err.code).toBe('DIGEST_MISMATCH');
    expect(err.message).toContain(wrongDiffId);
    expect(err.message).toContain(image.layers[1]!.diffId);
    expect(fresh.resolve(`${registry.host}/early/bad:1`)).toBeUndefined();
    expect(fresh.list()).toEqual([]);
    expect(await fs.readdir(fresh.tmpDir)).toEqual([]);
  });

  it('pulls a layer sent chunked (no Content-Length) through node:http, after the direct download declines it', async () => {
    const image = await buildImage({ format: 'oci', layers: [{ big: randomBytes(300_000) }] });
    const source = new ContentStore(path.join(work, 'push-chunked'));
    await storeImage(source, image);
    await client.push(
      parseReference(`${registry.host}/chunked/layer:1`),
      { manifest: image.manifest },
      source,
    );
    const layer = image.layers[0]!.digest;
    const isLayer = (method: string, url: string) => method === 'GET' && url.endsWith(`/blobs/${layer}`);
    const proxy = await startFlakyProxy(registry.host, () => false, isLayer);
    try {
      const sink = new ContentStore(path.join(work, 'pull-chunked'));
      const pulled = await client.pull(parseReference(`${proxy.host}/chunked/layer:1`), sink);
      expect(pulled.digest).toBe(image.digest);
      expect(sha256(await fs.readFile(sink.blobPath(layer)))).toBe(layer);
      // Asked twice: the direct download declined the chunked answer, node:http took it.
      expect(proxy.requests.filter((r) => isLayer(...(r.split(' ') as [string, string])))).toHaveLength(2);
      expect(await fs.readdir(sink.tmpDir)).toEqual([]);
    } finally {
      await proxy.stop();
    }
  });

  it('refuses to push a local blob that no longer matches its digest, and the registry keeps nothing', async () => {
    const image = await buildImage({ format: 'oci', layers: [{ data: Buffer.alloc(50_000, 5) }] });
    const source = new ContentStore(path.join(work, 'push-damaged'));
    await storeImage(source, image);
    const layer = image.layers[0]!;
    const file = source.blobPath(layer.digest);
    const bytes = await fs.readFile(file);
    bytes[100] = bytes[100]! ^ 0xff;
    await fs.writeFile(file, bytes);
    const ref = parseReference(`${registry.host}/damaged/local:1`);
    const err = await client.push(ref, { manifest: image.manifest }, source).catch((e) => e);
    expect(isRegistryError(err, 'DIGEST_MISMATCH')).toBe(true);
    expect(err.message).toContain(layer.digest);
    expect(err.message).toContain(sha256(bytes));
    expect(await client.hasBlob(ref.domain, ref.path, layer.digest)).toBe(false);
    const manifest = await client.getManifest(ref).catch((e) => e);
    expect(isRegistryError(manifest, 'MANIFEST_UNKNOWN', 'NAME_UNKNOWN')).toBe(true);
  });

  it('names the host when the registry cannot be reached', async () => {
    const closed = new RegistryClient({ configPath: path.join(work, 'none.json') });
    const err = await closed.getManifest(parseReference('127.0.0.1:1/a/b:c')).catch((e) => e);
    expect(isRegistryError(err, 'NETWORK')).toBe(true);
    expect(err.message).toContain('127.0.0.1:1');
  });
});
