import { execFile } from 'node:child_process';
import { createWriteStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { finished } from 'node:stream/promises';
import { promisify } from 'node:util';
import { tempDir } from '@corral/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { saveArchive } from '../src/archive/save.js';
import { ensureBusyboxImage } from '../src/busybox.js';
import { RegistryClient } from '../src/registry/client.js';
import { isRegistryError } from '../src/registry/errors.js';
import type { ProgressEvent } from '../src/registry/progress.js';
import { pullToStore, pushFromStore } from '../src/registry/store.js';
import { ContentStore } from '../src/store/content.js';
import { ImageStore } from '../src/store/image-store.js';
import { parseReference } from '../src/store/reference.js';
import { buildImage, buildIndex, storeImage, writeOciLayout } from './registry-image.js';
import { sha256, startRegistry, type TestRegistry } from './registry-server.js';

const run = promisify(execFile);

async function skopeo(...args: string[]): Promise<string> {
  const { stdout } = await run('skopeo', args, { maxBuffer: 64 * 1024 * 1024 });
  return stdout;
}

/** The digest skopeo sees for a reference: sha256 of the raw manifest it fetches. */
async function skopeoRawDigest(ref: string): Promise<string> {
  const { stdout } = await run('skopeo', ['inspect', '--tls-verify=false', '--raw', `docker://${ref}`], {
    encoding: 'buffer',
  });
  return sha256(stdout);
}

async function ociLayoutManifestDigest(dir: string): Promise<string> {
  const index = JSON.parse(await fs.readFile(path.join(dir, 'index.json'), 'utf8')) as {
    manifests: { digest: string }[];
  };
  return index.manifests[0]!.digest;
}

describe('registry client against docker-registry, checked by skopeo', () => {
  let registry: TestRegistry;
  let work: string;
  let client: RegistryClient;

  beforeAll(async () => {
    registry = await startRegistry();
    work = tempDir('registry-skopeo');
    client = new RegistryClient({ configPath: path.join(work, 'docker', 'config.json') });
  });

  afterAll(async () => {
    await registry?.stop();
    if (work) await fs.rm(work, { recursive: true, force: true });
  });

  it('pings a loopback registry over plain HTTP without auth', async () => {
    const ping = await client.ping(registry.host);
    expect(ping).toEqual({ url: `http://${registry.host}/`, auth: 'none' });
  });

  it('pushes an OCI image that skopeo inspects and copies out with the same digests', async () => {
    const image = await buildImage({
      format: 'oci',
      layers: [{ 'etc/hello': 'hello\n' }, { 'bin/tool': Buffer.alloc(300_000, 7) }],
    });
    const source = new ContentStore(path.join(work, 'push-oci'));
    await storeImage(source, image);
    const events: ProgressEvent[] = [];
    const ref = parseReference(`${registry.host}/corral/oci:v1`);
    const result = await client.push(ref, { manifest: image.manifest }, source, {
      onProgress: (e) => events.push(e),
    });
    expect(result.digest).toBe(image.digest);
    expect(result.mediaType).toBe(image.mediaType);
    expect(result.blobs.map((b) => b.outcome).sort()).toEqual(['uploaded', 'uploaded', 'uploaded']);
    expect(
      events
        .filter((e) => e.status === 'done')
        .map((e) => e.digest)
        .sort(),
    ).toEqual([image.configDigest, ...image.layers.map((l) => l.digest)].sort());

    expect(await skopeoRawDigest(`${registry.host}/corral/oci:v1`)).toBe(image.digest);
    const inspected = JSON.parse(
      await skopeo('inspect', '--tls-verify=false', `docker://${registry.host}/corral/oci:v1`),
    ) as {
      Digest: string;
      Layers: string[];
    };
    expect(inspected.Digest).toBe(image.digest);
    expect(inspected.Layers).toEqual(image.layers.map((l) => l.digest));

    const out = path.join(work, 'copied-out');
    await skopeo(
      'copy',
      '--src-tls-verify=false',
      `docker://${registry.host}/corral/oci:v1`,
      `oci:${out}:v1`,
    );
    expect(await ociLayoutManifestDigest(out)).toBe(image.digest);
    for (const [digest, data] of image.blobs) {
      const copied = await fs.readFile(path.join(out, 'blobs', 'sha256', digest.slice(7)));
      expect(sha256(copied)).toBe(digest);
      expect(copied.equals(data)).toBe(true);
    }
  });

  it('pushes a Docker schema 2 image in chunks (PATCH then PUT) and skips blobs on a second push', async () => {
    const image = await buildImage({
      format: 'docker',
      layers: [{ 'a/one': Buffer.from('x'.repeat(50_000)) }, { 'b/two': Buffer.alloc(200_000, 1) }],
    });
    const source = new ContentStore(path.join(work, 'push-docker'));
    await storeImage(source, image);
    const ref = parseReference(`${registry.host}/corral/docker:v2`);
    const seen = registry.requests.length;
    const first = await client.push(ref, { manifest: image.manifest }, source, { chunkSize: 4096 });
    expect(first.digest).toBe(image.digest);
    // Every blob went up in 4 KiB PATCHes closed by one PUT ?digest=.
    const closing = () =>
      registry.requests.slice(seen).filter((r) => r.startsWith('PUT ') && r.includes('digest=sha256'));
    // The access log reaches us through a pipe, a moment after the answers.
    for (let i = 0; i < 100 && closing().length < 3; i++) await new Promise((r) => setTimeout(r, 50));
    const made = registry.requests.slice(seen);
    const expectedPatches = [...image.blobs.entries()]
      .filter(([d]) => d !== image.digest)
      .reduce((n, [, data]) => n + Math.ceil(data.length / 4096), 0);
    expect(made.filter((r) => r.startsWith('PATCH ')).length).toBe(expectedPatches);
    expect(closing()).toHaveLength(3);
    expect(await skopeoRawDigest(`${registry.host}/corral/docker:v2`)).toBe(image.digest);
    const raw = JSON.parse(
      await skopeo('inspect', '--tls-verify=false', '--raw', `docker://${registry.host}/corral/docker:v2`),
    );
    expect(raw.mediaType).toBe('application/vnd.docker.distribution.manifest.v2+json');

    const again = await client.push(ref, { manifest: image.manifest }, source);
    expect(again.blobs.every((b) => b.outcome === 'exists')).toBe(true);
    expect(again.digest).toBe(image.digest);

    const mounted = await client.push(
      parseReference(`${registry.host}/corral/mounted:v2`),
      { manifest: image.manifest },
      source,
      {
        mountFrom: 'corral/docker',
      },
    );
    expect(mounted.blobs.map((b) => b.outcome)).toEqual(['mounted', 'mounted', 'mounted']);
    expect(await skopeoRawDigest(`${registry.host}/corral/mounted:v2`)).toBe(image.digest);
  });

  for (const format of ['oci', 'v2s2'] as const) {
    it(`pulls what skopeo copied in (${format}) into the image store with the same digests`, async () => {
      const image = await buildImage({
        format: 'oci',
        layers: [
          { 'etc/os-release': 'ID=corral\n' },
          { 'usr/share/data': Buffer.alloc(500_000, 3), 'usr/share/x': 'x' },
        ],
        cmd: ['/bin/echo', format],
      });
      const layout = path.join(work, `layout-${format}`);
      await writeOciLayout(layout, image, 'src');
      const name = `${registry.host}/skopeo/${format}:latest`;
      await skopeo(
        'copy',
        '--dest-tls-verify=false',
        '--format',
        format,
        `oci:${layout}:src`,
        `docker://${name}`,
      );
      const skopeoDigest = await skopeoRawDigest(name);
      if (format === 'oci') expect(skopeoDigest).toBe(image.digest);

      const store = new ImageStore(path.join(work, `store-${format}`));
      const events: ProgressEvent[] = [];
      const { record, pulled } = await pullToStore(client, store, name, {
        onProgress: (e) => events.push(e),
      });
      expect(pulled.digest).toBe(skopeoDigest);
      expect(record.manifestDigest).toBe(skopeoDigest);
      expect(record.configDigest).toBe(image.configDigest);
      expect(record.layers.map((l) => l.digest)).toEqual(image.layers.map((l) => l.digest));
      expect(record.layers.map((l) => l.diffId)).toEqual(image.layers.map((l) => l.diffId));
      expect(pulled.mediaType).toBe(
        format === 'oci'
          ? 'application/vnd.oci.image.manifest.v1+json'
          : 'application/vnd.docker.distribution.manifest.v2+json',
      );
      for (const l of image.layers) expect(sha256(await store.content.readBlob(l.digest))).toBe(l.digest);
      expect(sha256(await store.content.readBlob(skopeoDigest))).toBe(skopeoDigest);
      const [, top] = store.layerDirs(name);
      expect((await fs.readFile(path.join(top!, 'usr/share/x'), 'utf8')).trim()).toBe('x');
      expect((await store.config(name)).config?.Cmd).toEqual(['/bin/echo', format]);
      expect(events.filter((e) => e.kind === 'layer' && e.status === 'done')).toHaveLength(2);
      expect(pulled.bytesDownloaded).toBe(image.layers.reduce((n, l) => n + l.size, 0));

      // A second pull finds every layer in the store and fetches none.
      const second: ProgressEvent[] = [];
      const again = await pullToStore(client, store, name, { onProgress: (e) => second.push(e) });
      expect(again.pulled.bytesDownloaded).toBe(0);
      expect(second.filter((e) => e.kind === 'layer' && e.status === 'exists')).toHaveLength(2);
    });
  }

  it('pushes a stored image back from the image store (corral push) and skopeo agrees', async () => {
    const image = await buildImage({ format: 'oci', layers: [{ 'srv/app': 'app\n' }] });
    const layout = path.join(work, 'layout-roundtrip');
    await writeOciLayout(layout, image, 'src');
    await skopeo(
      'copy',
      '--dest-tls-verify=false',
      `oci:${layout}:src`,
      `docker://${registry.host}/round/trip:one`,
    );
    const store = new ImageStore(path.join(work, 'store-roundtrip'));
    await pullToStore(client, store, `${registry.host}/round/trip:one`);
    const pushed = await pushFromStore(
      client,
      store,
      `${registry.host}/round/trip:one`,
      `${registry.host}/round/again:two`,
    );
    expect(pushed.digest).toBe(image.digest);
    expect(await skopeoRawDigest(`${registry.host}/round/again:two`)).toBe(image.digest);
  });

  it('moves the embedded busybox both ways: corral push for skopeo, corral save -> skopeo -> corral pull', async () => {
    const store = new ImageStore(path.join(work, 'store-busybox'));
    const original = await ensureBusyboxImage(store);

    const pushed = await pushFromStore(client, store, 'busybox:latest', `${registry.host}/library/busybox:1`);
    expect(pushed.digest).toBe(original.manifestDigest);
    expect(await skopeoRawDigest(`${registry.host}/library/busybox:1`)).toBe(original.manifestDigest);
    // dir: keeps blobs as they are (skopeo's oci: would gzip the uncompressed busybox layer).
    const out = path.join(work, 'busybox-dir');
    await skopeo(
      'copy',
      '--src-tls-verify=false',
      `docker://${registry.host}/library/busybox:1`,
      `dir:${out}`,
    );
    expect(sha256(await fs.readFile(path.join(out, 'manifest.json')))).toBe(original.manifestDigest);
    for (const l of original.layers) {
      expect(sha256(await fs.readFile(path.join(out, l.digest.slice(7))))).toBe(l.digest);
    }

    const archive = path.join(work, 'busybox.tar');
    const file = createWriteStream(archive);
    await saveArchive(store, ['busybox:latest'], file);
    await finished(file);
    await skopeo(
      'copy',
      '--dest-tls-verify=false',
      `docker-archive:${archive}`,
      `docker://${registry.host}/saved/busybox:1`,
    );
    const fresh = new ImageStore(path.join(work, 'store-busybox-pulled'));
    const { record } = await pullToStore(client, fresh, `${registry.host}/saved/busybox:1`);
    expect(record.manifestDigest).toBe(await skopeoRawDigest(`${registry.host}/saved/busybox:1`));
    expect(record.configDigest).toBe(original.configDigest);
    expect(record.layers.map((l) => l.diffId)).toEqual(original.layers.map((l) => l.diffId));
    const [layer] = fresh.layerDirs(`${registry.host}/saved/busybox:1`);
    expect((await fs.stat(path.join(layer!, 'bin', 'busybox'))).isFile()).toBe(true);
  });

  it('picks the platform from a manifest list, like skopeo --override-arch', async () => {
    const amd64 = await buildImage({ format: 'docker', layers: [{ arch: 'amd64' }], architecture: 'amd64' });
    const arm64 = await buildImage({
      format: 'docker',
      layers: [{ arch: 'arm64' }],
      architecture: 'arm64',
      variant: 'v8',
    });
    const armv7 = await buildImage({
      format: 'docker',
      layers: [{ arch: 'armv7' }],
      architecture: 'arm',
      variant: 'v7',
    });
    const list = buildIndex('docker', [
      { image: amd64, platform: { os: 'linux', architecture: 'amd64' } },
      { image: arm64, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
      { image: armv7, platform: { os: 'linux', architecture: 'arm', variant: 'v7' } },
    ]);
    const source = new ContentStore(path.join(work, 'push-list'));
    await storeImage(source, amd64, arm64, armv7);
    const ref = parseReference(`${registry.host}/multi/arch:latest`);
    const pushed = await client.push(ref, { manifest: list.bytes }, source);
    expect(pushed.digest).toBe(list.digest);
    expect(pushed.mediaType).toBe('application/vnd.docker.distribution.manifest.list.v2+json');
    expect(await skopeoRawDigest(`${registry.host}/multi/arch:latest`)).toBe(list.digest);

    for (const [platform, image, skopeoArgs] of [
      ['linux/arm64', arm64, ['--override-arch', 'arm64']],
      ['linux/arm/v7', armv7, ['--override-arch', 'arm', '--override-variant', 'v7']],
      ['linux/amd64', amd64, ['--override-arch', 'amd64']],
    ] as const) {
      const sink = new ContentStore(path.join(work, `pull-list-${platform.replaceAll('/', '-')}`));
      const pulled = await client.pull(ref, sink, { platform });
      expect(pulled.digest).toBe(image.digest);
      expect(pulled.index?.digest).toBe(list.digest);
      expect(sink.hasBlob(list.digest)).toBe(true);
      // skopeo's dir: transport keeps the manifest it picked byte for byte.
      const out = path.join(work, `skopeo-list-${platform.replaceAll('/', '-')}`);
      await skopeo(
        ...skopeoArgs,
        'copy',
        '--src-tls-verify=false',
        `docker://${ref.domain}/${ref.path}:latest`,
        `dir:${out}`,
      );
      expect(sha256(await fs.readFile(path.join(out, 'manifest.json')))).toBe(image.digest);
    }

    // Pulled into the store, the image is found by the index digest too (NAME@<index digest>).
    const store = new ImageStore(path.join(work, 'store-list'));
    const { record } = await pullToStore(client, store, `${registry.host}/multi/arch:latest`, {
      platform: 'linux/arm64',
    });
    expect(record.manifestDigest).toBe(arm64.digest);
    expect(record.indexDigest).toBe(list.digest);
    expect(store.resolve(`${registry.host}/multi/arch@${list.digest}`)?.manifestDigest).toBe(arm64.digest);

    if (process.arch === 'x64') {
      const sink = new ContentStore(path.join(work, 'pull-list-default'));
      expect((await client.pull(ref, sink)).digest).toBe(amd64.digest);
    }
    const err = await client
      .pull(ref, new ContentStore(path.join(work, 'pull-list-none')), { platform: 'linux/s390x' })
      .catch((e) => e);
    expect(isRegistryError(err, 'PLATFORM_UNAVAILABLE')).toBe(true);
    expect(err.message).toContain('linux/s390x');
    expect(err.message).toContain('linux/arm64/v8');
  });

  it('refuses a single-platform image of another platform than the one asked for, before any layer', async () => {
    const image = await buildImage({ format: 'oci', layers: [{ only: 'amd64' }], architecture: 'amd64' });
    const source = new ContentStore(path.join(work, 'push-single'));
    await storeImage(source, image);
    const ref = parseReference(`${registry.host}/single/platform:1`);
    await client.push(ref, { manifest: image.manifest }, source);
    const sink = new ContentStore(path.join(work, 'pull-single'));
    const err = await client.pull(ref, sink, { platform: 'linux/arm64' }).catch((e) => e);
    expect(isRegistryError(err, 'PLATFORM_UNAVAILABLE')).toBe(true);
    expect(err.message).toContain('linux/amd64');
    expect(sink.listBlobs()).toEqual([]);
    expect((await client.pull(ref, sink, { platform: 'linux/amd64' })).digest).toBe(image.digest);
  });
});
