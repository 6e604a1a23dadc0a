import * as fs from 'node:fs';
import { join } from 'node:path';
import { syncfsAsync } from '@corral/sys';
import { ImageError } from '../errors.js';
import { applyLayer } from '../layer/apply.js';
import { canonicalConfigJson } from './canonical.js';
import { ContentStore } from './content.js';
import { digestHex, isDigest, sha256, shortId } from './digest.js';
import { acquireLock, cleanTempDir, pidAlive, readJsonFile, tempName, writeFileAtomic } from './fsutil.js';
import { familiarName, normalizeReference, parseReference } from './reference.js';
import {
  type Descriptor,
  type HistoryEntry,
  type ImageConfig,
  type ImageRecord,
  type ImageSummary,
  isLayerMediaType,
  type LayerRecord,
  type Manifest,
  MediaType,
} from './types.js';

/** The manifest to register: by digest (already a blob) or as bytes (stored as a blob). */
export interface ImportFromBlobsOptions {
  manifestDigest?: string;
  manifest?: Buffer;
  /** Names to point at the image, e.g. `busybox` or `localhost:5000/app:1`. */
  names?: string[];
  /** The index (manifest list) the manifest was picked from: `NAME@<index digest>` finds it too. */
  indexDigest?: string;
}

/** The blobs a pusher sends for one image, all present in `store.content`. */
export interface ImageBlobs {
  record: ImageRecord;
  manifest: Descriptor;
  config: Descriptor;
  layers: Descriptor[];
}

/** What the store keeps per unpacked layer, in layers/<diff hex>.json. */
interface LayerMeta {
  diffId: string;
  /** Folder name under l/. */
  dir: string;
  /** Uncompressed tar size. */
  size: number;
}

export interface RemoveOptions {
  force?: boolean;
  /** The engine's answer to "does a container use this image?" */
  isInUse?: (imageId: string) => boolean;
}

export interface RemoveResult {
  untagged: string[];
  deleted: string[];
}

export interface PruneOptions {
  /** Remove every image without a container, not only dangling (untagged) ones. */
  all?: boolean;
  isInUse?: (imageId: string) => boolean;
}

export interface PruneResult {
  deletedImages: string[];
  deletedLayers: string[];
  deletedBlobs: string[];
  reclaimedBytes: number;
}

export interface HistoryRow {
  id: string;
  created?: string;
  createdBy: string;
  size: number;
  comment: string;
  emptyLayer: boolean;
}

const LAYER_DIR_LEN = 16;
/** Layers of one image unpacked at once. */
const LAYER_CONCURRENCY = 3;

/** syncfs(2) on the filesystem holding `path`, on a worker thread so other layers keep unpacking. */
async function syncfsOf(path: string): Promise<void> {
  const fd = fs.openSync(path, 'r');
  try {
    await syncfsAsync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Docker layer media types and their OCI names, for OCI manifests built here. */
const OCI_LAYER_TYPE: Record<string, string> = {
  [MediaType.DockerLayer]: MediaType.OciLayer,
  [MediaType.DockerLayerGzip]: MediaType.OciLayerGzip,
  [MediaType.DockerLayerForeignGzip]: MediaType.OciLayerNondistributableGzip,
};

/**
 * The image store under one root (e.g. DATA/image):
 *
 *     blobs/sha256/<hex>     content store (manifests, configs, layer blobs)
 *     l/<16 hex>/            a layer unpacked once per diff ID, usable as an overlay lower dir
 *     layers/<hex>.json      the layer's record, written last: the layer exists iff it exists
 *     images/<hex>.json      one record per manifest digest
 *     refs.json              full name (docker.io/library/busybox:latest) -> manifest digest
 *     locks/  tmp/           lock folders and temp files (same filesystem, for rename)
 */
export class ImageStore {
  readonly root: string;
  readonly content: ContentStore;
  readonly layersRoot: string;
  private readonly metaDir: string;
  private readonly imagesDir: string;
  private readonly locksDir: string;
  private readonly activeDir: string;
  private readonly refsPath: string;

  constructor(root: string) {
    this.root = root;
    this.content = new ContentStore(root);
    this.layersRoot = join(root, 'l');
    this.metaDir = join(root, 'layers');
    this.imagesDir = join(root, 'images');
    this.locksDir = join(root, 'locks');
    this.activeDir = join(root, 'locks', 'active');
    this.refsPath = join(root, 'refs.json');
    for (const d of [this.layersRoot, this.metaDir, this.imagesDir, this.locksDir, this.activeDir]) {
      fs.mkdirSync(d, { recursive: true });
    }
    cleanTempDir(this.content.tmpDir);
    cleanTempDir(this.activeDir);
  }

  get tmpDir(): string {
    return this.content.tmpDir;
  }

  // --- sessions: writers register so that prune never collects blobs they just wrote ---

  /**
   * Runs `fn` as a write session: while it runs, prune and remove leave unreferenced blobs
   * and layers alone. Wrap a pull (blobs first, importFromBlobs last) in one.
   */
  async session<T>(fn: () => Promise<T>): Promise<T> {
    const release = await this.lock('gc');
    const mark = tempName(this.activeDir, 'session');
    try {
      fs.writeFileSync(mark, '');
    } finally {
      release();
    }
    try {
      return await fn();
    } finally {
      fs.rmSync(mark, { force: true });
    }
  }

  private activeSessions(): number {
    return fs.readdirSync(this.activeDir).filter((n) => pidAlive(Number.parseInt(n, 10))).length;
  }

  private lock(name: string): Promise<() => void> {
    return acquireLock(join(this.locksDir, name));
  }

  // --- layers ---

  private layerMetaPath(diffId: string): string {
    return join(this.metaDir, `${digestHex(diffId)}.json`);
  }

  private layerMeta(diffId: string): LayerMeta | undefined {
    return readJsonFile<LayerMeta>(this.layerMetaPath(diffId));
  }

  hasLayer(diffId: string): boolean {
    return this.layerMeta(diffId) !== undefined;
  }

  /** The folder of an unpacked layer; NOT_FOUND when it is not unpacked. */
  layerDir(diffId: string): string {
    const meta = this.layerMeta(diffId);
    if (!meta) throw new ImageError('NOT_FOUND', `layer ${diffId} is not unpacked in ${this.root}`);
    return join(this.layersRoot, meta.dir);
  }

  /**
   * Unpacks a layer blob once per diff ID: under a per-layer lock folder, into a temp folder,
   * verifying the uncompressed sha256 against `diffId`, then renamed into l/ and recorded.
   */
  /**
   * A queue that unpacks layers as they are handed over (a pull hands each one over as soon
   * as its blob is stored, so unpacking overlaps the rest of the download), a few at a time.
   * `done` waits for every one and throws the first failure; after a failure the layers
   * still queued are skipped.
   */
  layerUnpacker(): { add(layer: Parameters<ImageStore['ensureLayer']>[0]): void; done(): Promise<void> } {
    let active = 0;
    const waiting: (() => void)[] = [];
    const tasks: Promise<void>[] = [];
    let failure: { error: unknown } | undefined;
    const acquire = async () => {
      if (active < LAYER_CONCURRENCY) active++;
      else await new Promise<void>((r) => waiting.push(r));
    };
    const release = () => {
      const next = waiting.shift();
      if (next) next();
      else active--;
    };
    return {
      add: (layer) => {
        tasks.push(
          (async () => {
            await acquire();
            try {
              if (!failure) await this.ensureLayer(layer);
            } catch (e) {
              failure ??= { error: e };
            } finally {
              release();
            }
          })(),
        );
      },
      done: async () => {
        await Promise.all(tasks);
        if (failure) throw failure.error;
      },
    };
  }

  async ensureLayer(layer: { digest: string; diffId: string; mediaType?: string }): Promise<string> {
    const hex = digestHex(layer.diffId);
    const existing = this.layerMeta(layer.diffId);
    if (existing) return join(this.layersRoot, existing.dir);
    if (!this.content.hasBlob(layer.digest)) {
      throw new ImageError(
        'NOT_FOUND',
        `layer blob ${layer.digest} (diff ID ${layer.diffId}) is not in the content store`,
      );
    }
    const release = await this.lock(`layer-${hex}`);
    try {
      const again = this.layerMeta(layer.diffId);
      if (again) return join(this.layersRoot, again.dir);
      const dirName = hex.slice(0, LAYER_DIR_LEN);
      const final = join(this.layersRoot, dirName);
      // A folder without its record was left by a crash between rename and record: redo it.
      if (fs.existsSync(final)) {
        const away = tempName(this.tmpDir, 'old-layer');
        fs.renameSync(final, away);
        fs.rmSync(away, { recursive: true, force: true });
      }
      const tmp = tempName(this.tmpDir, 'layer');
      fs.mkdirSync(tmp, { mode: 0o755 });
      try {
        const result = await applyLayer(
          this.content.openBlob(layer.digest, { highWaterMark: 1024 * 1024 }),
          tmp,
        );
        if (result.diffId !== layer.diffId) {
          throw new ImageError(
            'DIGEST_MISMATCH',
            `layer ${layer.digest}: uncompressed digest ${result.diffId} does not match the diff ID ${layer.diffId} in the image config; the layer is corrupt, nothing was stored`,
          );
        }
        // One syncfs instead of an fsync per file: the layer's files are on disk before it is named.
        await syncfsOf(tmp);
        fs.renameSync(tmp, final);
        const meta: LayerMeta = { diffId: layer.diffId, dir: dirName, size: result.size };
        writeFileAtomic(this.layerMetaPath(layer.diffId), JSON.stringify(meta), this.tmpDir);
        return final;
      } catch (e) {
        fs.rmSync(tmp, { recursive: true, force: true });
        throw e;
      }
    } finally {
      release();
    }
  }

  // --- images ---

  private imagePath(manifestDigest: string): string {
    return join(this.imagesDir, `${digestHex(manifestDigest)}.json`);
  }

  /** Every image record. */
  records(): ImageRecord[] {
    const out: ImageRecord[] = [];
    for (const n of fs.readdirSync(this.imagesDir)) {
      if (!/^[a-f0-9]{64}\.json$/.test(n)) continue;
      const r = readJsonFile<ImageRecord>(join(this.imagesDir, n));
      if (r) out.push(r);
    }
    return out;
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
        bytes = await this.content.readBlob(manifestDigest);
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
      for (const diffId of new Set(layers.map((l) => l.diffId))) {
        unpacker.add(layers.find((l) => l.diffId === diffId)!);
      }
      await unpacker.done();
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
        await this.setRefs(options.names.map((n) => [normalizeReference(n), manifestDigest]));
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
    const config = await this.content.readJson<ImageConfig>(configDigest);
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
    const records = this.records();
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
      const target = this.readRefs()[normalizeReference(ref)];
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

  private readRefs(): Record<string, string> {
    return readJsonFile<{ refs: Record<string, string> }>(this.refsPath)?.refs ?? {};
  }

  private async updateRefs(change: (refs: Record<string, string>) => void): Promise<void> {
    const release = await this.lock('refs');
    try {
      const refs = this.readRefs();
      change(refs);
      const sorted = Object.fromEntries(Object.entries(refs).sort(([a], [b]) => a.localeCompare(b)));
      writeFileAtomic(this.refsPath, JSON.stringify({ refs: sorted }, null, 2), this.tmpDir);
    } finally {
      release();
    }
  }

  private async setRefs(pairs: [string, string][]): Promise<void> {
    await this.updateRefs((refs) => {
      for (const [name, digest] of pairs) refs[name] = digest;
    });
  }

  /** Full names pointing at a manifest. */
  namesOf(manifestDigest: string): string[] {
    return Object.entries(this.readRefs())
      .filter(([, d]) => d === manifestDigest)
      .map(([n]) => n);
  }

  /** Points `name` (normalized) at the image `ref` names. */
  async tag(ref: string, name: string): Promise<void> {
    const record = this.get(ref);
    const full = normalizeReference(name);
    if (parseReference(name).digest)
      throw new ImageError('INVALID_REFERENCE', `cannot tag with a digest: ${name}`);
    await this.setRefs([[full, record.manifestDigest]]);
  }

  /** Removes one name; NOT_FOUND when it is not there. */
  async untag(name: string): Promise<void> {
    const full = normalizeReference(name);
    let found = false;
    await this.updateRefs((refs) => {
      found = full in refs;
      delete refs[full];
    });
    if (!found) throw new ImageError('NOT_FOUND', `no such image name: ${name}`);
  }

  /** Rows for `images`: one per image with its short names. */
  list(): ImageSummary[] {
    const refs = Object.entries(this.readRefs());
    return this.records()
      .map((r) => ({
        id: r.id,
        manifestDigest: r.manifestDigest,
        repoTags: refs.filter(([, d]) => d === r.manifestDigest).map(([n]) => familiarName(n)),
        created: r.created,
        size: r.layers.reduce((s, l) => s + this.layerSize(l), 0),
      }))
      .sort((a, b) => (b.created ?? '').localeCompare(a.created ?? ''));
  }

  private layerSize(l: LayerRecord): number {
    return this.layerMeta(l.diffId)?.size ?? l.size;
  }

  /**
   * docker rmi: a name that is one of several only loses that name; otherwise the image is
   * deleted (refused with IN_USE while a container uses it, unless force), then unreferenced
   * layers and blobs are collected.
   */
  async remove(ref: string, options: RemoveOptions = {}): Promise<RemoveResult> {
    const record = this.get(ref);
    const names = this.namesOf(record.manifestDigest);
    const byName = names.includes(safeNormalize(ref) ?? '');
    if (byName && names.length > 1 && !options.force) {
      await this.untag(ref);
      return { untagged: [familiarName(safeNormalize(ref)!)], deleted: [] };
    }
    if (!byName && names.length > 1 && !options.force) {
      throw new ImageError(
        'CONFLICT',
        `image ${shortId(record.id)} has several names (${names.map(familiarName).join(', ')}); remove them by name, or force the removal`,
      );
    }
    if (!options.force && options.isInUse?.(record.id)) {
      throw new ImageError(
        'IN_USE',
        `image ${shortId(record.id)} (${names.map(familiarName).join(', ') || 'untagged'}) is used by a container; remove the container first or force the removal`,
      );
    }
    await this.updateRefs((refs) => {
      for (const n of names) delete refs[n];
    });
    fs.rmSync(this.imagePath(record.manifestDigest), { force: true });
    await this.collect();
    return { untagged: names.map(familiarName), deleted: [record.id] };
  }

  /**
   * Removes dangling images (no name; with `all`: every image not in use), then layers and
   * blobs no image references.
   */
  async prune(options: PruneOptions = {}): Promise<PruneResult> {
    const refs = new Set(Object.values(this.readRefs()));
    const deletedImages: string[] = [];
    for (const r of this.records()) {
      const dangling = !refs.has(r.manifestDigest);
      if (!dangling && !options.all) continue;
      if (options.isInUse?.(r.id)) continue;
      if (!dangling) {
        const names = this.namesOf(r.manifestDigest);
        await this.updateRefs((all) => {
          for (const n of names) delete all[n];
        });
      }
      fs.rmSync(this.imagePath(r.manifestDigest), { force: true });
      deletedImages.push(r.id);
    }
    const collected = await this.collect();
    return { deletedImages, ...collected };
  }

  /** Deletes layers and blobs that no image record references; skipped while a writer runs. */
  private async collect(): Promise<Omit<PruneResult, 'deletedImages'>> {
    const result = { deletedLayers: [] as string[], deletedBlobs: [] as string[], reclaimedBytes: 0 };
    const release = await this.lock('gc');
    try {
      if (this.activeSessions() > 0) return result;
      const blobs = new Set<string>();
      const diffIds = new Set<string>();
      for (const r of this.records()) {
        blobs.add(r.manifestDigest);
        blobs.add(r.configDigest);
        for (const l of r.layers) {
          blobs.add(l.digest);
          diffIds.add(l.diffId);
        }
      }
      const keptDirs = new Set<string>();
      for (const n of fs.readdirSync(this.metaDir)) {
        const meta = readJsonFile<LayerMeta>(join(this.metaDir, n));
        if (!meta) continue;
        if (diffIds.has(meta.diffId)) {
          keptDirs.add(meta.dir);
          continue;
        }
        fs.rmSync(join(this.metaDir, n), { force: true });
        result.reclaimedBytes += meta.size;
        result.deletedLayers.push(meta.diffId);
      }
      // Folders without a record: removed layers and leftovers of a crash.
      for (const d of fs.readdirSync(this.layersRoot)) {
        if (!keptDirs.has(d)) fs.rmSync(join(this.layersRoot, d), { recursive: true, force: true });
      }
      for (const b of this.content.listBlobs()) {
        if (blobs.has(b)) continue;
        result.reclaimedBytes += this.content.blobSize(b);
        this.content.deleteBlob(b);
        result.deletedBlobs.push(b);
      }
      return result;
    } finally {
      release();
    }
  }

  /** Deletes blobs a failed operation wrote, when no image needs them and no other writer runs. */
  async discardBlobs(digests: Iterable<string>): Promise<void> {
    const release = await this.lock('gc');
    try {
      if (this.activeSessions() > 1) return;
      const used = new Set<string>();
      for (const r of this.records()) {
        used.add(r.manifestDigest);
        used.add(r.configDigest);
        for (const l of r.layers) used.add(l.digest);
      }
      for (const d of digests) if (!used.has(d)) this.content.deleteBlob(d);
    } finally {
      release();
    }
  }

  // --- inspect and history ---

  /** Docker-like `image inspect` JSON. */
  async inspect(ref: string): Promise<Record<string, unknown>> {
    const r = this.get(ref);
    const config = await this.readConfig(r.configDigest);
    const names = this.namesOf(r.manifestDigest);
    return {
      Id: r.id,
      RepoTags: names.map(familiarName),
      RepoDigests: [...new Set(names.map((n) => `${familiarName(repoOf(n))}@${r.manifestDigest}`))],
      Parent: '',
      Comment: config.history?.at(-1)?.comment ?? '',
      Created: config.created ?? '',
      DockerVersion: '',
      Author: config.author ?? '',
      Config: config.config ?? {},
      Architecture: config.architecture,
      Variant: config.variant,
      Os: config.os,
      Size: r.layers.reduce((s, l) => s + this.layerSize(l), 0),
      RootFS: { Type: 'layers', Layers: config.rootfs.diff_ids },
      Metadata: { LastTagTime: r.loadedAt },
      Descriptor: { mediaType: r.manifestMediaType, digest: r.manifestDigest, size: r.manifestSize },
    };
  }

  /** `history`: newest first, sizes from the layers, like docker. */
  async history(ref: string): Promise<HistoryRow[]> {
    const r = this.get(ref);
    const config = await this.readConfig(r.configDigest);
    const entries: HistoryEntry[] = config.history?.length
      ? config.history
      : r.layers.map(() => ({ created_by: '' }));
    let layer = 0;
    const rows: HistoryRow[] = entries.map((h) => {
      const empty = h.empty_layer === true;
      const l = empty ? undefined : r.layers[layer++];
      return {
        id: '<missing>',
        created: h.created,
        createdBy: h.created_by ?? '',
        size: l ? this.layerSize(l) : 0,
        comment: h.comment ?? '',
        emptyLayer: empty,
      };
    });
    if (rows.length) rows[rows.length - 1].id = r.id;
    return rows.reverse();
  }

  /**
   * Problems in the store, empty when consistent: every name points at an image, every
   * image's blobs exist and its layers are unpacked.
   */
  check(): string[] {
    const problems: string[] = [];
    const records = new Map(this.records().map((r) => [r.manifestDigest, r]));
    for (const [name, digest] of Object.entries(this.readRefs())) {
      if (!records.has(digest)) problems.push(`name ${name} points at missing image ${digest}`);
    }
    for (const r of records.values()) {
      for (const d of [r.manifestDigest, r.configDigest, ...r.layers.map((l) => l.digest)]) {
        if (!this.content.hasBlob(d)) problems.push(`image ${r.id}: blob ${d} missing`);
      }
      for (const l of r.layers) {
        const meta = this.layerMeta(l.diffId);
        if (!meta) problems.push(`image ${r.id}: layer ${l.diffId} not unpacked`);
        else if (!fs.existsSync(join(this.layersRoot, meta.dir)))
          problems.push(`layer ${l.diffId}: folder missing`);
      }
    }
    for (const n of fs.readdirSync(this.metaDir)) {
      const meta = readJsonFile<LayerMeta>(join(this.metaDir, n));
      if (meta && !fs.existsSync(join(this.layersRoot, meta.dir)))
        problems.push(`layer ${meta.diffId}: folder missing`);
    }
    for (const b of this.content.listBlobs()) {
      const size = this.content.blobSize(b);
      if (size < 64 * 1024 * 1024) {
        const actual = sha256(fs.readFileSync(this.content.blobPath(b)));
        if (actual !== b) problems.push(`blob ${b} holds data with digest ${actual}`);
      }
    }
    return problems;
  }
}

function safeNormalize(ref: string): string | undefined {
  try {
    return normalizeReference(ref);
  } catch {
    return undefined;
  }
}

function repoOf(full: string): string {
  const r = parseReference(full);
  return `${r.domain}/${r.path}`;
}

/** Parses and checks an image manifest (not an index). */
export function parseManifest(bytes: Buffer, digest: string): Manifest {
  let m: Manifest;
  try {
    m = JSON.parse(bytes.toString('utf8')) as Manifest;
  } catch (e) {
    throw new ImageError('BAD_MANIFEST', `manifest ${digest} is not valid JSON: ${(e as Error).message}`);
  }
  if (m?.schemaVersion !== 2 || !m.config || !Array.isArray(m.layers)) {
    const what =
      m && 'manifests' in (m as object) ? 'an index, not an image manifest' : 'not a schema 2 image manifest';
    throw new ImageError('BAD_MANIFEST', `manifest ${digest} is ${what}`);
  }
  for (const d of [m.config, ...m.layers]) {
    if (!d || typeof d.digest !== 'string' || !isDigest(d.digest) || typeof d.size !== 'number') {
      throw new ImageError('BAD_MANIFEST', `manifest ${digest} has a bad descriptor: ${JSON.stringify(d)}`);
    }
  }
  for (const l of m.layers) {
    if (!isLayerMediaType(l.mediaType)) {
      throw new ImageError('UNSUPPORTED', `manifest ${digest}: unsupported layer media type ${l.mediaType}`);
    }
  }
  return m;
}
