import * as fs from 'node:fs';
import type { Readable, TransformCallback, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar-stream';
import { ImageError } from '../errors.js';
import { Decompress } from '../layer/compress.js';
import { sha256 } from '../store/digest.js';
import { tempName } from '../store/fsutil.js';
import { HashingStream } from '../store/hashing.js';
import type { ImageStore } from '../store/image-store.js';
import { familiarName, normalizeReference, parseReference } from '../store/reference.js';
import { type Descriptor, type ImageRecord, type Manifest, MediaType } from '../store/types.js';
import { ANNOTATION_CONTAINERD_NAME, ANNOTATION_REF_NAME } from './common.js';

const EPOCH = new Date(0);

interface Blob {
  digest: string;
  size: number;
  path?: string;
  data?: Buffer;
}

/**
 * Writes the images `refs` name as a docker-archive in the layout of Docker 25+: an OCI
 * image layout (oci-layout, index.json, blobs/sha256) plus docker's manifest.json, with
 * uncompressed layers (blob digest = diff ID). `docker load`, podman and skopeo read it
 * as docker-archive, and skopeo/umoci as an OCI layout too.
 */
export async function saveArchive(store: ImageStore, refs: string[], output: Writable): Promise<void> {
  if (refs.length === 0) throw new ImageError('NOT_FOUND', 'save needs at least one image');
  const temps: string[] = [];
  try {
    const blobs = new Map<string, Blob>();
    const index: Descriptor[] = [];
    const dockerManifest: { Config: string; RepoTags: string[]; Layers: string[] }[] = [];
    const seen = new Map<string, { Config: string; RepoTags: string[]; Layers: string[] }>();
    const descs = new Map<string, Descriptor>();
    for (const ref of refs) {
      const record = store.get(ref);
      const name = namedBy(ref, record, store);
      let item = seen.get(record.manifestDigest);
      if (!item) {
        const { manifest, layers } = await uncompressedManifest(store, record, blobs, temps);
        const manifestBytes = Buffer.from(JSON.stringify(manifest));
        const manifestDesc: Descriptor = {
          mediaType: MediaType.OciManifest,
          digest: sha256(manifestBytes),
          size: manifestBytes.length,
        };
        blobs.set(manifestDesc.digest, {
          digest: manifestDesc.digest,
          size: manifestDesc.size,
          data: manifestBytes,
        });
        blobs.set(record.configDigest, {
          digest: record.configDigest,
          size: record.configSize,
          path: store.content.blobPath(record.configDigest),
        });
        item = {
          Config: blobName(record.configDigest),
          RepoTags: [],
          Layers: layers.map((l) => blobName(l.digest)),
        };
        seen.set(record.manifestDigest, item);
        dockerManifest.push(item);
        descs.set(record.manifestDigest, manifestDesc);
      }
      const desc = descs.get(record.manifestDigest)!;
      const names = name ? [name] : [];
      for (const n of names) {
        item.RepoTags.push(familiarName(n));
        index.push({
          ...desc,
          annotations: {
            [ANNOTATION_CONTAINERD_NAME]: n,
            [ANNOTATION_REF_NAME]: parseReference(n).tag ?? 'latest',
          },
        });
      }
      if (!names.length && !index.some((d) => d.digest === desc.digest)) index.push(desc);
    }

    const pack = tar.pack();
    const piping = pipeline(pack as unknown as Readable, output);
    piping.catch(() => {}); // awaited below; a failed blob ends the save before that
    const add = (name: string, data: Buffer) =>
      new Promise<void>((res, rej) => {
        pack.entry({ name, mtime: EPOCH, mode: 0o644, size: data.length }, data, (e) => (e ? rej(e) : res()));
      });
    const addDir = (name: string) =>
      new Promise<void>((res, rej) => {
        pack.entry({ name, type: 'directory', mtime: EPOCH, mode: 0o755 }, (e) => (e ? rej(e) : res()));
      });
    await addDir('blobs/');
    await addDir('blobs/sha256/');
    for (const b of [...blobs.values()].sort((x, y) => x.digest.localeCompare(y.digest))) {
      if (b.data) {
        await add(blobName(b.digest), b.data);
        continue;
      }
      // Checked while it streams out: a blob damaged in the store fails the save, by name,
      // instead of shipping to a load elsewhere that would refuse it.
      await new Promise<void>((res, rej) => {
        const sink = pack.entry({ name: blobName(b.digest), mtime: EPOCH, mode: 0o644, size: b.size }, (e) =>
          e ? rej(e) : res(),
        );
        pipeline(
          fs.createReadStream(b.path!),
          new BlobCheck(b.digest, b.size, b.path!),
          sink as unknown as NodeJS.WritableStream,
        ).catch((e) => {
          rej(e);
          // The tar entry never completes: end the archive stream with the same error.
          pack.destroy(e as Error);
        });
      });
    }
    await add(
      'index.json',
      Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: index })),
    );
    await add('manifest.json', Buffer.from(JSON.stringify(dockerManifest)));
    await add('oci-layout', Buffer.from(JSON.stringify({ imageLayoutVersion: '1.0.0' })));
    pack.finalize();
    await piping;
  } finally {
    for (const t of temps) fs.rmSync(t, { force: true });
  }
}

/** Passes a stored blob's bytes on, failing at the end when they are not what its digest and size say. */
class BlobCheck extends HashingStream {
  constructor(
    private readonly expected: string,
    private readonly expectedSize: number,
    private readonly path: string,
  ) {
    super('sha256');
  }

  override _flush(done: TransformCallback): void {
    const actual = this.digest();
    if (actual === this.expected && this.size === this.expectedSize) done();
    else
      done(
        new ImageError(
          'DIGEST_MISMATCH',
          `blob ${this.expected} (${this.path}) holds ${this.size} bytes with digest ${actual}, not ${this.expectedSize} bytes with its own digest: the store is damaged; nothing was saved`,
          { repair: 'system-check' },
        ),
      );
  }
}

function blobName(digest: string): string {
  return `blobs/sha256/${digest.slice(7)}`;
}

/** The full name `ref` used, when it is a name of the image (not an ID). */
function namedBy(ref: string, record: ImageRecord, store: ImageStore): string | undefined {
  try {
    const full = normalizeReference(ref);
    if (store.namesOf(record.manifestDigest).includes(full)) return full;
  } catch {
    // An ID, not a name.
  }
  return undefined;
}

/**
 * The image's manifest with every layer uncompressed, as Docker 25+ saves it: compressed
 * layers are decompressed to a temp file, hashed and checked against their diff ID.
 */
async function uncompressedManifest(
  store: ImageStore,
  record: ImageRecord,
  blobs: Map<string, Blob>,
  temps: string[],
): Promise<{ manifest: Manifest; layers: Descriptor[] }> {
  const layers: Descriptor[] = [];
  for (const l of record.layers) {
    if (!blobs.has(l.diffId)) {
      if (l.digest === l.diffId) {
        blobs.set(l.diffId, { digest: l.diffId, size: l.size, path: store.content.blobPath(l.digest) });
      } else {
        const tmp = tempName(store.tmpDir, 'save-layer');
        temps.push(tmp);
        const hasher = new HashingStream('sha256');
        const blobHash = new HashingStream('sha256');
        const damaged = `layer blob ${l.digest} (${store.content.blobPath(l.digest)})`;
        try {
          await pipeline(
            store.content.openBlob(l.digest),
            blobHash,
            new Decompress(),
            hasher,
            fs.createWriteStream(tmp),
          );
        } catch (e) {
          throw new ImageError(
            'BAD_LAYER',
            `${damaged} cannot be read: ${(e as Error).message}; the store is damaged, nothing was saved`,
            { repair: 'system-check' },
          );
        }
        if (blobHash.digest() !== l.digest)
          throw new ImageError(
            'DIGEST_MISMATCH',
            `${damaged} holds data with digest ${blobHash.digest()}; the store is damaged, nothing was saved`,
            { repair: 'system-check' },
          );
        const digest = hasher.digest();
        const size = hasher.size;
        if (digest !== l.diffId) {
          throw new ImageError(
            'DIGEST_MISMATCH',
            `layer ${l.digest} uncompresses to ${digest}, but its diff ID is ${l.diffId}; the store is damaged`,
            { repair: 'system-check' },
          );
        }
        blobs.set(l.diffId, { digest, size, path: tmp });
      }
    }
    layers.push({ mediaType: MediaType.OciLayer, digest: l.diffId, size: blobs.get(l.diffId)!.size });
  }
  const manifest: Manifest = {
    schemaVersion: 2,
    mediaType: MediaType.OciManifest,
    config: { mediaType: MediaType.OciConfig, digest: record.configDigest, size: record.configSize },
    layers,
  };
  return { manifest, layers };
}
