import { join } from 'node:path';
import { ImageError } from '../errors.js';
import { canonicalConfigJson } from './canonical.js';
import { ContentStore } from './content.js';
import { digestHex, isDigest, sha256 } from './digest.js';
import { type FsckResult, fsckStore } from './fsck.js';
import {
  acquireLock,
  cleanTempDir,
  type Release,
  readJsonFile,
  removeIdleLocks,
  writeFileAtomic,
} from './fsutil.js';
import { Collector } from './gc.js';
import { Holds, type ImageUser } from './holds.js';
import { type HistoryRow, historyRows, inspectImage } from './inspect.js';
import { LayerStore, type LayerToUnpack, type LayerUnpacker } from './layer-store.js';
import { MAX_CONFIG_BYTES, MAX_MANIFEST_BYTES } from './limits.js';
import { imageRecords, layerSize, listImages } from './listing.js';
import { checkStore } from './maintenance.js';
import { parseManifest } from './manifest-check.js';
import { normalizeReference, parseReference } from './reference.js';
import { RefStore } from './refs.js';
import { Removal } from './removal.js';
import { isPrivateOrMissing, privateDir, privateFiles } from './state-dir.js';
import {
  type Descriptor,
  type ImageBlobs,
  type ImageConfig,
  type ImageRecord,
  type ImageSummary,
  type ImportFromBlobsOptions,
  type LayerRecord,
  type Manifest,
  MediaType,
  type PruneOptions,
  type PruneResult,
  type RemoveOptions,
  type RemoveResult,
} from './types.js';

export type { Finding, FsckResult } from './fsck.js';
export type { ImageUser } from './holds.js';
export type { HistoryRow } from './inspect.js';
export { parseManifest } from './manifest-check.js';
export type {
  ImageBlobs,
  ImportFromBlobsOptions,
  PruneOptions,
  PruneResult,
  RemoveOptions,
  RemoveResult,
} from './types.js';

/** Docker layer media types and their OCI names, for OCI manifests built here. */
const OCI_LAYER_TYPE: Record<string, string> = {
  [MediaType.DockerLayer]: MediaType.OciLayer,
  [MediaType.DockerLayerGzip]: MediaType.OciLayerGzip,
  [MediaType.DockerLayerForeignGzip]: MediaType.OciLayerNondistributableGzip,
};

export interface ImageStoreOptions {
  /**
   * The containers that use an image (the engine's answer): removal and prune keep what they
   * use, and a running one refuses even a forced removal.
   */
  users?: (imageId: string) => ImageUser[];
}

/**
 * The image store under one root (e.g. DATA/image):
 *
 *     blobs/sha256/<hex>     content store (manifests, configs, layer blobs)
 *     l/<16 hex>/            a layer unpacked once per diff ID, usable as an overlay lower dir
 *     layers/<hex>.json      the layer's record, written last: the layer exists iff it exists
 *     images/<hex>.json      one record per manifest digest
 *     refs.json              full name (docker.io/library/busybox:latest) -> manifest digest
 *     holds/<holder>         an image held by a container being made (see holds.ts)
 *     locks/  tmp/           lock files and temp files (same filesystem, for rename)
 *
 * Every folder is 0700 and every lock file 0600 (see state-dir.ts); opening a store made by
 * an older version sets them so.
 */
export class ImageStore {
  readonly root: string;
  readonly content: ContentStore;
  readonly layers: LayerStore;
  readonly layersRoot: string;
  private readonly imagesDir: string;
  private readonly locksDir: string;
  private readonly activeDir: string;
  private readonly refs: RefStore;
  private readonly gc: Collector;
  private readonly removal: Removal;

  constructor(root: string, options: ImageStoreOptions = {}) {
    this.root = root;
    this.content = new ContentStore(root);
    this.layers = new LayerStore(root, this.content, (name) => this.lock(name));
    this.layersRoot = this.layers.root;
    this.imagesDir = join(root, 'images');
    this.locksDir = join(root, 'locks');
    this.activeDir = join(root, 'locks', 'active');
    this.refs = new RefStore(join(root, 'refs.json'), this.content.tmpDir, (name) => this.lock(name));
    const oldLocks = !isPrivateOrMissing(this.locksDir);
    for (const d of [this.imagesDir, this.locksDir, this.activeDir]) privateDir(d);
    if (oldLocks) {
      // Lock files an older version made 0644 (the folder is 0700 now in any case).
      privateFiles(this.locksDir);
      privateFiles(this.activeDir);
    }
    cleanTempDir(this.content.tmpDir);
    cleanTempDir(this.activeDir);
    removeIdleLocks(this.locksDir, 'layer-');
    this.gc = new Collector(
      this.activeDir,
      (name) => this.lock(name),
      () => this.records(),
      this.layers,
      this.content,
    );
    this.removal = new Removal({
      store: this,
      refs: this.refs,
      gc: this.gc,
      holds: new Holds(join(root, 'holds')),
      users: options.users ?? (() => []),
      imagePath: (digest) => this.imagePath(digest),
    });
  }

  get tmpDir(): string {
    return this.content.tmpDir;
  }

  // --- sessions: writers register so that prune never collects blobs they just wrote ---

  /**
   * Runs `fn` as a write session: while it runs, prune and remove leave unreferenced blobs
   * and layers alone. Wrap a pull (blobs first, importFromBlobs last) in one.
   */
  session<T>(fn: () => Promise<T>): Promise<T> {
    return this.gc.session(fn);
  }

  private lock(name: string): Promise<Release> {
    return acquireLock(join(this.locksDir, name));
  }

  // --- layers ---

  hasLayer(diffId: string): boolean {
    return this.layers.meta(diffId) !== undefined;
  }

  /** The folder of an unpacked layer; NOT_FOUND when it is not unpacked. */
  layerDir(diffId: string): string {
    return this.layers.dir(diffId, this.root);
  }

  /** A queue that unpacks layers as they are handed over (see LayerStore.unpacker). */
  layerUnpacker(): LayerUnpacker {
    return this.layers.unpacker();
  }

  /** Unpacks a layer blob once per diff ID (see LayerStore.ensure). */
  ensureLayer(layer: LayerToUnpack): Promise<string> {
    return this.layers.ensure(layer);
  }

  // --- images ---

  private imagePath(manifestDigest: string): string {
    return join(this.imagesDir, `${digestHex(manifestDigest)}.json`);
  }

  /** Every image record, those removed while containers still use them too (see `removed`). */
  records(): ImageRecord[] {
    return imageRecords(this.imagesDir);
  }

  /**
   * Registers an image whose manifest, config and layer blobs are in the content store
   * (the manifest may be passed as bytes instead). Checks the manifest, unpacks each
   * layer (verifying diff IDs), writes the image record, then points `names` at it.
   */
  async importFromBlobs(options: ImportFromBlobsOptions): Promise<ImageRecord> {
    return this.session(async () => {
      let manifestDigest = options.manifestDigest;
      let bytes = options.manifest;
      if (bytes) {
        const info = await this.content.writeBlob(bytes, manifestDigest ? { digest: manifestDigest } : {});
        manifestDigest = info.digest;
      } else if (manifestDigest) {
        bytes = await this.content.readBlob(manifestDigest, {
          bytes: MAX_MANIFEST_BYTES,
          what: `manifest ${manifestDigest}`,
        });
      } else {
        throw new ImageError('BAD_MANIFEST', 'importFromBlobs needs a manifestDigest or the manifest bytes');
      }
      const manifest = parseManifest(bytes, manifestDigest);
      const config = await this.readConfig(manifest.config.digest);
      const diffIds = config.rootfs.diff_ids;
      if (diffIds.length !== manifest.layers.length) {
        throw new ImageError(
          'BAD_MANIFEST',
          `image ${manifestDigest}: the manifest lists ${manifest.layers.length} layers but the config has ${diffIds.length} diff IDs`,
        );
      }
      const layers: LayerRecord[] = manifest.layers.map((l, i) => ({
        digest: l.digest,
        mediaType: l.mediaType,
        size: l.size,
        diffId: diffIds[i],
      }));
      for (const l of layers) {
        if (!this.content.hasBlob(l.digest)) {
          throw new ImageError(
            'NOT_FOUND',
            `image ${manifestDigest}: layer blob ${l.digest} is missing from the content store`,
          );
        }
        const size = this.content.blobSize(l.digest);
        if (size !== l.size) {
          throw new ImageError(
            'SIZE_MISMATCH',
            `layer blob ${l.digest} has ${size} bytes, the manifest says ${l.size}`,
          );
        }
      }
      // Layers unpack side by side (each into its own temp folder, under its own lock): file
      // creation is the cost, and the pool then creates files in several folders at once.
      const unpacker = this.layerUnpacker();
      const fresh = [...new Set(layers.map((l) => l.diffId))].filter((d) => !this.hasLayer(d));
      for (const diffId of new Set(layers.map((l) => l.diffId))) {
        unpacker.add(layers.find((l) => l.diffId === diffId)!);
      }
      try {
        await unpacker.done();
      } catch (e) {
        // Layers this import unpacked before another failed (a full disk) go with it.
        await this.gc.discardLayers(fresh);
        throw e;
      }
      const record: ImageRecord = {
        id: manifest.config.digest,
        manifestDigest,
        manifestMediaType: manifest.mediaType ?? MediaType.OciManifest,
        manifestSize: bytes.length,
        configDigest: manifest.config.digest,
        configMediaType: manifest.config.mediaType,
        configSize: manifest.config.size,
        layers,
        created: config.created,
        loadedAt: new Date().toISOString(),
      };
      const previous = readJsonFile<ImageRecord>(this.imagePath(manifestDigest));
      if (previous) record.loadedAt = previous.loadedAt;
      const indexDigest = options.indexDigest ?? previous?.indexDigest;
      if (indexDigest) record.indexDigest = indexDigest;
      writeFileAtomic(this.imagePath(manifestDigest), JSON.stringify(record, null, 2), this.tmpDir);
      if (options.names?.length)
        await this.refs.set(options.names.map((n) => [normalizeReference(n), manifestDigest]));
      return record;
    });
  }

  /**
   * Builds and registers an image from a config and layer blobs already stored: writes the
   * config blob and an OCI manifest. Used by commit, import and the embedded busybox.
   */
  async createImage(config: ImageConfig, layers: Descriptor[], names: string[] = []): Promise<ImageRecord> {
    const configBytes = Buffer.from(canonicalConfigJson(config));
    const configIsNew = !this.content.hasBlob(sha256(configBytes));
    const cfg = await this.content.writeBlob(configBytes);
    const manifest: Manifest = {
      schemaVersion: 2,
      mediaType: MediaType.OciManifest,
      config: { mediaType: MediaType.OciConfig, digest: cfg.digest, size: cfg.size },
      layers: layers.map((l) => ({ ...l, mediaType: OCI_LAYER_TYPE[l.mediaType] ?? l.mediaType })),
    };
    const manifestBytes = Buffer.from(JSON.stringify(manifest));
    const manifestIsNew = !this.content.hasBlob(sha256(manifestBytes));
    try {
      return await this.importFromBlobs({ manifest: manifestBytes, names });
    } catch (e) {
      const made = [...(configIsNew ? [cfg.digest] : []), ...(manifestIsNew ? [sha256(manifestBytes)] : [])];
      await this.discardBlobs(made);
      throw e;
    }
  }

  async readConfig(configDigest: string): Promise<ImageConfig> {
    const config = await this.content.readJson<ImageConfig>(configDigest, {
      bytes: MAX_CONFIG_BYTES,
      what: `image config ${configDigest}`,
    });
    if (!config || typeof config !== 'object' || !config.rootfs || !Array.isArray(config.rootfs.diff_ids)) {
      throw new ImageError('BAD_MANIFEST', `image config ${configDigest} has no rootfs.diff_ids`);
    }
    for (const d of config.rootfs.diff_ids) {
      if (!isDigest(d))
        throw new ImageError('BAD_MANIFEST', `image config ${configDigest}: bad diff ID "${d}"`);
    }
    return config;
  }

  /** The image a reference names: a name, name@digest, a manifest digest, or an image ID (prefix). */
  resolve(ref: string): ImageRecord | undefined {
    const records = this.records().filter((r) => !r.removed);
    let parsed: ReturnType<typeof parseReference> | undefined;
    try {
      parsed = parseReference(ref);
    } catch {
      parsed = undefined;
    }
    if (parsed?.digest)
      return records.find(
        (r) =>
          r.manifestDigest === parsed.digest || r.id === parsed.digest || r.indexDigest === parsed.digest,
      );
    if (parsed && !/^(sha256:)?[a-f0-9]{12,64}$/.test(ref)) {
      const target = this.refs.read()[normalizeReference(ref)];
      const byName = target ? records.find((r) => r.manifestDigest === target) : undefined;
      if (byName || !/^[a-f0-9]{3,}$/.test(ref)) return byName;
    }
    const m = /^(?:sha256:)?([a-f0-9]{3,64})$/.exec(ref);
    if (!m) return undefined;
    const prefix = `sha256:${m[1]}`;
    const hits = records.filter((r) => r.id.startsWith(prefix) || r.manifestDigest.startsWith(prefix));
    const ids = new Set(hits.map((r) => r.id));
    if (ids.size > 1) {
      throw new ImageError(
        'INVALID_REFERENCE',
        `"${ref}" matches ${ids.size} images; give more digits of the ID`,
      );
    }
    return hits[0];
  }

  /** Like resolve, but NOT_FOUND when there is no such image. */
  get(ref: string): ImageRecord {
    const r = this.resolve(ref);
    if (!r)
      throw new ImageError('NOT_FOUND', `no such image: ${ref} (see the image list, or pull/load it first)`);
    return r;
  }

  /**
   * The record of an image by its full id, also one removed while containers still use it
   * (what a container's commit builds on).
   */
  record(imageId: string): ImageRecord | undefined {
    const all = this.records().filter((r) => r.id === imageId);
    return all.find((r) => !r.removed) ?? all[0];
  }

  /**
   * Resolves `ref` and holds the image for `holder` (a container being made from it) until
   * `unhold`: a removal meanwhile keeps it (see holds.ts). NOT_FOUND when the image is not
   * there, or not whole (a layer not unpacked).
   */
  hold(ref: string, holder: string): Promise<ImageRecord> {
    return this.removal.hold(ref, holder);
  }

  /** Drops a hold (the container's record now names the image, or its create failed). */
  unhold(holder: string): void {
    this.removal.unhold(holder);
  }

  /**
   * A container made from `imageId` is gone: an image removed while containers used it
   * (`rmi -f`) goes now, with its layers and blobs, when no other container uses it.
   */
  release(imageId: string): Promise<void> {
    return this.removal.release(imageId);
  }

  async config(ref: string): Promise<ImageConfig> {
    return this.readConfig(this.get(ref).configDigest);
  }

  /** Lower dirs of an image, bottom layer first (overlay wants them top first: reverse). */
  layerDirs(ref: string): string[] {
    return this.get(ref).layers.map((l) => this.layerDir(l.diffId));
  }

  /** The manifest, config and layer blobs of a stored image, for a pusher. */
  imageBlobs(ref: string): ImageBlobs {
    const record = this.get(ref);
    return {
      record,
      manifest: {
        mediaType: record.manifestMediaType,
        digest: record.manifestDigest,
        size: record.manifestSize,
      },
      config: { mediaType: record.configMediaType, digest: record.configDigest, size: record.configSize },
      layers: record.layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
    };
  }

  // --- references ---

  /** Full names pointing at a manifest. */
  namesOf(manifestDigest: string): string[] {
    return this.refs.namesOf(manifestDigest);
  }

  /** Points `name` (normalized) at the image `ref` names. */
  async tag(ref: string, name: string): Promise<void> {
    const record = this.get(ref);
    const full = normalizeReference(name);
    if (parseReference(name).digest)
      throw new ImageError('INVALID_REFERENCE', `cannot tag with a digest: ${name}`);
    await this.refs.set([[full, record.manifestDigest]]);
  }

  /** Removes one name; NOT_FOUND when it is not there. */
  async untag(name: string): Promise<void> {
    const full = normalizeReference(name);
    let found = false;
    await this.refs.update((refs) => {
      found = full in refs;
      delete refs[full];
    });
    if (!found) throw new ImageError('NOT_FOUND', `no such image name: ${name}`);
  }

  /** Rows for `images`: one per image with its short names. */
  list(): ImageSummary[] {
    return listImages(this.root);
  }

  private layerSize(l: LayerRecord): number {
    return layerSize(this.root, l);
  }

  /**
   * docker rmi, with Docker's rules for images in use (see removal.ts): refused while a
   * running container uses the image, even with force; with force, an image stopped
   * containers use loses its names and is hidden, its layers kept until they are removed.
   */
  remove(ref: string, options: RemoveOptions = {}): Promise<RemoveResult> {
    return this.removal.remove(ref, options);
  }

  /**
   * docker image prune: dangling images (with `all`: every image), never one a container
   * uses, then layers and blobs no image references.
   */
  prune(options: PruneOptions = {}): Promise<PruneResult> {
    return this.removal.prune(options);
  }

  /** Deletes blobs a failed operation wrote, when no image needs them and no other writer runs. */
  discardBlobs(digests: Iterable<string>): Promise<void> {
    return this.gc.discardBlobs(digests);
  }

  /** Deletes layers a failed operation unpacked (by diff ID), when no image needs them and no other writer runs. */
  discardLayers(diffIds: Iterable<string>): Promise<void> {
    return this.gc.discardLayers(diffIds);
  }

  // --- inspect and history ---

  /** Docker-like `image inspect` JSON. */
  async inspect(ref: string): Promise<Record<string, unknown>> {
    const r = this.get(ref);
    const config = await this.readConfig(r.configDigest);
    return inspectImage(r, config, this.namesOf(r.manifestDigest), (l) => this.layerSize(l));
  }

  /** `history`: newest first, sizes from the layers, like docker. */
  async history(ref: string): Promise<HistoryRow[]> {
    const r = this.get(ref);
    return historyRows(r, await this.readConfig(r.configDigest), (l) => this.layerSize(l));
  }

  /**
   * Problems in the store, empty when consistent: every name points at an image, every
   * image's blobs exist and its layers are unpacked.
   */
  check(): string[] {
    return checkStore(this.records(), this.refs.read(), this.layers, this.content);
  }

  /**
   * `system check` of the store (see fsck.ts): every file parsed, every blob hashed, every
   * layer blob checked against its diff ID; with `repair`, what can be fixed without losing
   * data is fixed.
   */
  fsck(options: { repair?: boolean } = {}): Promise<FsckResult> {
    const parts = {
      root: this.root,
      imagesDir: this.imagesDir,
      refsPath: join(this.root, 'refs.json'),
      activeDir: this.activeDir,
      content: this.content,
      layers: this.layers,
      lock: (name: string) => this.lock(name),
    };
    return fsckStore(parts, options.repair === true);
  }
}
