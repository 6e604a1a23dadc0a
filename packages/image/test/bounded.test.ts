import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { createGzip } from 'node:zlib';
import { MS, mount } from '@corral/sys';
import { Cleanups } from '@corral/testkit';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { hostArchitecture } from '../src/archive/common.js';
import { applyLayer, ImageStore, importRootfs, loadArchive, sha256 } from '../src/index.js';
import { RegistryClient } from '../src/registry/client.js';
import { pullToStore } from '../src/registry/store.js';
import { makeTar } from './helpers.js';
import { startRegistry, type TestRegistry } from './registry-server.js';

// Hostile archives and layers, built here, against a store on a 64 MiB tmpfs of the test's
// own: each must fail fast with a clear error, hold little memory whatever it claims, never
// fill the filesystem, and leave the image stored before it as it was.

const MiB = 1024 * 1024;
/** The file's temp folder, with the tmpfs under it: unmounted and removed after the last test. */
const fileCleanup = new Cleanups();
let tmp: string;
let data: string;
let store: ImageStore;

beforeAll(async () => {
  tmp = fileCleanup.tempDir('image');
  data = join(tmp, 'data');
  fs.mkdirSync(data);
  mount('corral-test', data, 'tmpfs', MS.NOSUID | MS.NODEV, 'size=64m');
  store = new ImageStore(join(data, 'image'));
  const layer = await makeTar([{ name: 'kept', body: 'still here' }]);
  await importRootfs(store, Readable.from([layer]), { names: ['keep:1'] });
});
afterAll(() => fileCleanup.run());

// --- building hostile tars without holding their bodies ---

/** A ustar header (sizes up to 8 GiB fit its octal field). */
function header(name: string, size: number, type = '0'): Buffer {
  const b = Buffer.alloc(512);
  b.write(name, 0, 100);
  b.write('0000644\0', 100);
  b.write('0000000\0', 108);
  b.write('0000000\0', 116);
  b.write(`${size.toString(8).padStart(11, '0')}\0`, 124);
  b.write('14000000000\0', 136);
  b.write('        ', 148);
  b.write(type, 156);
  b.write('ustar\0', 257);
  b.write('00', 263);
  let sum = 0;
  for (const x of b) sum += x;
  b.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  return b;
}

type Body = Buffer | { zeros: number };
const pad = (n: number) => Buffer.alloc((512 - (n % 512)) % 512);
const sizeOf = (b: Body) => (Buffer.isBuffer(b) ? b.length : b.zeros);

/** A tar of `entries` streamed lazily; `pulled` counts the bytes its reader took. */
function lazyTar(entries: [string, Body][]): { stream: Readable; pulled: () => number } {
  let pulled = 0;
  const zeros = Buffer.alloc(MiB);
  async function* gen() {
    for (const [name, body] of entries) {
      const size = sizeOf(body);
      yield header(name, size);
      if (Buffer.isBuffer(body)) yield body;
      else for (let left = size; left > 0; left -= MiB) yield left >= MiB ? zeros : zeros.subarray(0, left);
      yield pad(size);
    }
    yield Buffer.alloc(1024);
  }
  const counted = (async function* () {
    for await (const c of gen()) {
      pulled += c.length;
      yield c;
    }
  })();
  return { stream: Readable.from(counted, { objectMode: false }), pulled: () => pulled };
}

/** A layer tar of `files` files of `each` zero bytes, gzipped (a few hundred KiB), and its diff ID. */
async function gzipBomb(files: number, each: number): Promise<{ gz: Buffer; diffId: string }> {
  const { stream } = lazyTar(Array.from({ length: files }, (_, i) => [`zero${i}`, { zeros: each }]));
  const hash = createHash('sha256');
  const gzip = createGzip();
  const out: Buffer[] = [];
  const collecting = (async () => {
    for await (const c of gzip) out.push(c as Buffer);
  })();
  for await (const c of stream) {
    hash.update(c as Buffer);
    if (!gzip.write(c)) await new Promise((r) => gzip.once('drain', r));
  }
  gzip.end();
  await collecting;
  return { gz: Buffer.concat(out), diffId: `sha256:${hash.digest('hex')}` };
}

/** A classic docker-archive of one image with these layer bodies. */
function dockerArchive(layers: { body: Body; diffId: string }[], tag = 'hostile:1') {
  const config = Buffer.from(
    JSON.stringify({
      architecture: hostArchitecture(),
      os: 'linux',
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
    }),
  );
  const configName = `${sha256(config).slice(7)}.json`;
  const manifest = [{ Config: configName, RepoTags: [tag], Layers: layers.map((_, i) => `l${i}/layer.tar`) }];
  return lazyTar([
    ...layers.map((l, i): [string, Body] => [`l${i}/layer.tar`, l.body]),
    [configName, config],
    ['manifest.json', Buffer.from(JSON.stringify(manifest))],
  ]);
}

// --- what must hold after every hostile input ---

function snapshot() {
  return {
    records: store.records(),
    blobs: store.content.listBlobs().sort(),
    layers: fs.readdirSync(store.layersRoot).sort(),
  };
}
let before: ReturnType<typeof snapshot>;
let minFree: number;
let watch: NodeJS.Timeout;
const free = () => {
  const st = fs.statfsSync(data);
  return st.bavail * st.bsize;
};
beforeEach(() => {
  before = snapshot();
  minFree = free();
  watch = setInterval(() => {
    minFree = Math.min(minFree, free());
  }, 1);
});
afterEach(() => {
  clearInterval(watch);
  expect(snapshot()).toEqual(before);
  expect(store.check()).toEqual([]);
  expect(fs.readdirSync(store.tmpDir)).toEqual([]);
  expect(fs.readFileSync(join(store.layerDirs('keep:1')[0], 'kept'), 'utf8')).toBe('still here');
  // The filesystem never filled up.
  expect(minFree).toBeGreaterThan(MiB);
});

async function refusal(p: Promise<unknown>): Promise<Error & { code?: string }> {
  try {
    await p;
  } catch (e) {
    return e as Error & { code?: string };
  }
  throw new Error('the hostile input was accepted');
}

describe('JSON documents have the registry caps on every way in', () => {
  it('a manifest.json claiming 1 GiB is refused from its header, unread', async () => {
    const a = lazyTar([['manifest.json', { zeros: 1024 * MiB }]]);
    const e = await refusal(loadArchive(store, a.stream));
    expect(e.code).toBe('BAD_ARCHIVE');
    expect(e.message).toMatch(/manifest\.json .* is 1 GiB, more than the 4 MiB allowed/);
    expect(a.pulled()).toBeLessThan(64 * MiB);
  });

  it('a 1 GiB config entry is refused from its header, unread', async () => {
    const a = lazyTar([[`${'a'.repeat(64)}.json`, { zeros: 1024 * MiB }]]);
    const e = await refusal(loadArchive(store, a.stream));
    expect(e.message).toMatch(/config .* is 1 GiB, more than the 32 MiB allowed/);
    expect(a.pulled()).toBeLessThan(64 * MiB);
  });

  it('an OCI layout whose manifest names a 40 MiB config is refused', async () => {
    const config = {
      digest: `sha256:${'b'.repeat(64)}`,
      size: 40 * MiB,
      mediaType: 'application/vnd.oci.image.config.v1+json',
    };
    const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, config, layers: [] }));
    const index = {
      schemaVersion: 2,
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          digest: sha256(manifest),
          size: manifest.length,
        },
      ],
    };
    const a = lazyTar([
      ['oci-layout', Buffer.from('{"imageLayoutVersion":"1.0.0"}')],
      ['index.json', Buffer.from(JSON.stringify(index))],
      [`blobs/sha256/${sha256(manifest).slice(7)}`, manifest],
    ]);
    const e = await refusal(loadArchive(store, a.stream));
    expect(e.message).toMatch(/image config sha256:b+ is 40 MiB, more than the 32 MiB allowed/);
  });

  it('a stored config over 32 MiB is refused before it is read (pull, import and load register through here)', async () => {
    const other = new ImageStore(join(tmp, 'big-config'));
    const big = await other.content.writeBlob(Buffer.alloc(33 * MiB, 0x20));
    const manifest = {
      schemaVersion: 2,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...big },
      layers: [],
    };
    const e = await refusal(other.importFromBlobs({ manifest: Buffer.from(JSON.stringify(manifest)) }));
    expect(e.message).toMatch(/image config sha256:[a-f0-9]+ is 33 MiB, more than the 32 MiB allowed/);
    const huge = Buffer.from(JSON.stringify({ ...manifest, annotations: { pad: 'x'.repeat(5 * MiB) } }));
    const m = await refusal(other.importFromBlobs({ manifest: huge }));
    expect(m.message).toMatch(/manifest sha256:[a-f0-9]+ is 5 MiB, more than the 4 MiB allowed/);
  });
});

describe('archives cannot make the loader hold unbounded memory', () => {
  it('more than 100 000 entries are refused', async () => {
    const entries = Array.from({ length: 100_001 }, (_, i): [string, Body] => [`f/${i}`, Buffer.alloc(0)]);
    const e = await refusal(loadArchive(store, lazyTar(entries).stream));
    expect(e.message).toMatch(/more than 100000 entries/);
  });

  it('entry names taking more than 16 MiB together are refused', async () => {
    const dir = 'd/'.repeat(1900);
    const entries = Array.from({ length: 4500 }, (_, i) => ({ name: `${dir}${i}`, body: '' }));
    const e = await refusal(loadArchive(store, Readable.from([await makeTar(entries)])));
    expect(e.message).toMatch(/entry names take more than 16 MiB together/);
  });

  it('an entry name longer than PATH_MAX is refused, in an archive and in a layer', async () => {
    const long = `${'d/'.repeat(2500)}f`;
    const e = await refusal(loadArchive(store, Readable.from([await makeTar([{ name: long, body: 'x' }])])));
    expect(e.message).toMatch(/name of 5001 bytes, more than the 4096 allowed/);
    const dir = join(tmp, 'long-name-layer');
    fs.mkdirSync(dir);
    const l = await refusal(applyLayer(Readable.from([await makeTar([{ name: long, body: 'x' }])]), dir));
    expect(l.code).toBe('BAD_LAYER');
    expect(l.message).toMatch(/a name of 5001 bytes, longer than the 4096/);
  });
});

describe('a layer that would fill the disk is refused, and nothing of it stays', () => {
  it('a 100 MiB layer entry is refused before a byte of it is written', async () => {
    const a = dockerArchive([{ body: { zeros: 100 * MiB }, diffId: `sha256:${'c'.repeat(64)}` }]);
    const e = await refusal(loadArchive(store, a.stream));
    expect(e.code).toBe('NO_SPACE');
    expect(e.message).toMatch(
      new RegExp(`not enough space in ${store.root}: archive file l0/layer.tar needs 100 MiB more, .* free`),
    );
    expect(a.pulled()).toBeLessThan(32 * MiB);
  });

  it('a small gzip blob unpacking to one 100 MiB file is refused before the file is written', async () => {
    const bomb = await gzipBomb(1, 100 * MiB);
    expect(bomb.gz.length).toBeLessThan(MiB);
    const e = await refusal(
      loadArchive(store, dockerArchive([{ body: bomb.gz, diffId: bomb.diffId }]).stream),
    );
    expect(e.code).toBe('NO_SPACE');
    expect(e.message).toMatch(
      new RegExp(`not enough space in ${store.root}: layer ${bomb.diffId} needs 100 MiB more`),
    );
  });

  it('a gzip blob unpacking to 200 files of 512 KiB is stopped while it unpacks, on load and on import', async () => {
    const bomb = await gzipBomb(200, MiB / 2);
    const e = await refusal(
      loadArchive(store, dockerArchive([{ body: bomb.gz, diffId: bomb.diffId }]).stream),
    );
    expect(e.code).toBe('NO_SPACE');
    expect(e.message).toMatch(
      /not enough space in .*: layer sha256:[a-f0-9]+ needs .* more \(.* written so far\)/,
    );
    expect(e.message).toMatch(/nothing of it was kept/);
    const i = await refusal(importRootfs(store, Readable.from([bomb.gz]), { names: ['bomb:1'] }));
    expect(i.code).toBe('NO_SPACE');
  });
});

describe('a registry pull has the same bounds', () => {
  let registry: TestRegistry;
  let client: RegistryClient;
  beforeAll(async () => {
    registry = await startRegistry();
    client = new RegistryClient({ configPath: join(tmp, 'docker-config.json') });
  });
  afterAll(() => registry?.stop());

  /** Uploads a blob the plain way (the registry checks its digest) and returns its descriptor. */
  async function putBlob(repo: string, data: Buffer, mediaType: string) {
    const digest = sha256(data);
    const start = await fetch(`http://${registry.host}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
    expect(start.status).toBe(202);
    const url = new URL(start.headers.get('location')!, `http://${registry.host}`);
    url.searchParams.set('digest', digest);
    const put = await fetch(url, {
      method: 'PUT',
      body: data,
      headers: { 'Content-Type': 'application/octet-stream' },
    });
    expect(put.status).toBe(201);
    return { mediaType, digest, size: data.length };
  }

  async function putImage(repo: string, config: Buffer, layers: Buffer[], layerType = 'tar') {
    const manifest = {
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: await putBlob(repo, config, 'application/vnd.oci.image.config.v1+json'),
      layers: await Promise.all(
        layers.map((l) => putBlob(repo, l, `application/vnd.oci.image.layer.v1.${layerType}`)),
      ),
    };
    const put = await fetch(`http://${registry.host}/v2/${repo}/manifests/1`, {
      method: 'PUT',
      body: JSON.stringify(manifest),
      headers: { 'Content-Type': manifest.mediaType },
    });
    expect(put.status).toBe(201);
    return `${registry.host}/${repo}:1`;
  }

  const configFor = (layers: Buffer[], pad = '', diffIds = layers.map((l) => sha256(l))) =>
    Buffer.from(
      JSON.stringify({
        architecture: hostArchitecture(),
        os: 'linux',
        rootfs: { type: 'layers', diff_ids: diffIds },
        ...(pad ? { comment: pad } : {}),
      }),
    );

  it('a config over 32 MiB is refused before it is downloaded', async () => {
    const layer = await makeTar([{ name: 'f', body: 'x' }]);
    const name = await putImage('big/config', configFor([layer], 'x'.repeat(33 * MiB)), [layer]);
    const e = await refusal(pullToStore(client, store, name));
    expect(e.message).toMatch(
      /is 33 MiB, more than the 32 MiB allowed for it here; refused before downloading/,
    );
  });

  it('a layer bigger than the free space is refused before it is downloaded', async () => {
    const layer = Buffer.alloc(80 * MiB);
    const name = await putImage('big/layer', configFor([layer]), [layer]);
    const e = await refusal(pullToStore(client, store, name));
    expect(e.message).toMatch(
      new RegExp(`not enough space in ${store.root}: blob sha256:[a-f0-9]+ needs 80 MiB more`),
    );
  });

  // The blobs come in whole (a small gzip), then the unpack finds the disk full: the pull
  // gives back its blobs and layers, as a failed load does.
  it('a small layer blob that unpacks past the free space leaves no blob of the pull behind', async () => {
    const bomb = await gzipBomb(200, MiB / 2);
    const name = await putImage('big/bomb', configFor([], '', [bomb.diffId]), [bomb.gz], 'tar+gzip');
    const e = await refusal(pullToStore(client, store, name));
    expect(e.code).toBe('NO_SPACE');
    expect(e.message).toMatch(/nothing of it was kept/);
  });
});
