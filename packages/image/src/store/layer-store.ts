import * as fs from 'node:fs';
import { join } from 'node:path';
import { syncfsAsync } from '@corral/sys';
import { ImageError } from '../errors.js';
import { applyLayer } from '../layer/apply.js';
import { TaskGroup } from '../task-group.js';
import type { ContentStore } from './content.js';
import { digestHex } from './digest.js';
import { type Release, readJsonFile, tempName, writeFileAtomic } from './fsutil.js';
import { SpaceGuard } from './space.js';
import { privateDir } from './state-dir.js';

/** What the store keeps per unpacked layer, in layers/<diff hex>.json. */
export interface LayerMeta {
  diffId: string;
  /** Folder name under l/. */
  dir: string;
  /** Uncompressed tar size. */
  size: number;
}

/** A layer to unpack: its blob and the diff ID its image config gives. */
export interface LayerToUnpack {
  digest: string;
  diffId: string;
  mediaType?: string;
}

export interface LayerUnpacker {
  add(layer: LayerToUnpack): void;
  done(): Promise<void>;
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

/** The file of a layer's record (LayerMeta) in the store at `storeRoot`. */
export function layerMetaPath(storeRoot: string, diffId: string): string {
  return join(storeRoot, 'layers', `${digestHex(diffId)}.json`);
}

/**
 * The unpacked layers of an image store:
 *
 *     l/<16 hex>/            a layer unpacked once per diff ID, usable as an overlay lower dir
 *     layers/<hex>.json      the layer's record, written last: the layer exists iff it exists
 *
 * l/ is 0700: a layer holds the image's setuid binaries and private files, and only root
 * (which mounts the overlays) may reach them.
 */
export class LayerStore {
  /** l/: the unpacked layers. */
  readonly root: string;
  /** layers/: their records. */
  readonly metaDir: string;

  constructor(
    private readonly storeRoot: string,
    private readonly content: ContentStore,
    private readonly lock: (name: string) => Promise<Release>,
  ) {
    this.root = join(storeRoot, 'l');
    this.metaDir = join(storeRoot, 'layers');
    privateDir(this.root);
    privateDir(this.metaDir);
  }

  private get tmpDir(): string {
    return this.content.tmpDir;
  }

  private metaPath(diffId: string): string {
    return layerMetaPath(this.storeRoot, diffId);
  }

  /** Where a layer's record is (layers/<hex>.json). */
  metaPathOf(diffId: string): string {
    return this.metaPath(diffId);
  }

  meta(diffId: string): LayerMeta | undefined {
    return readJsonFile<LayerMeta>(this.metaPath(diffId));
  }

  /** Every layer record, with its file name under layers/. */
  allMeta(): { file: string; meta: LayerMeta }[] {
    const out: { file: string; meta: LayerMeta }[] = [];
    for (const file of fs.readdirSync(this.metaDir)) {
      const meta = readJsonFile<LayerMeta>(join(this.metaDir, file));
      if (meta) out.push({ file, meta });
    }
    return out;
  }

  /** The folder of an unpacked layer; NOT_FOUND when it is not unpacked. */
  dir(diffId: string, storeRoot: string): string {
    const meta = this.meta(diffId);
    if (!meta) throw new ImageError('NOT_FOUND', `layer ${diffId} is not unpacked in ${storeRoot}`);
    return join(this.root, meta.dir);
  }

  /**
   * A queue that unpacks layers as they are handed over (a pull hands each one over as soon
   * as its blob is stored, so unpacking overlaps the rest of the download), a few at a time.
   * `done` waits for every one and throws the first failure; after a failure the layers
   * still queued are skipped.
   */
  unpacker(): LayerUnpacker {
    const group = new TaskGroup(LAYER_CONCURRENCY);
    return {
      add: (layer) =>
        group.add(async () => {
          await this.ensure(layer);
        }),
      done: () => group.done(),
    };
  }

  /**
   * Unpacks a layer blob once per diff ID: under a per-layer lock, into a temp folder,
   * verifying the uncompressed sha256 against `diffId`, then renamed into l/ and recorded.
   * On failure the temp folder is removed: nothing half-unpacked stays in the store.
   */
  async ensure(layer: LayerToUnpack): Promise<string> {
    const hex = digestHex(layer.diffId);
    const existing = this.meta(layer.diffId);
    if (existing) return join(this.root, existing.dir);
    if (!this.content.hasBlob(layer.digest)) {
      throw new ImageError(
        'NOT_FOUND',
        `layer blob ${layer.digest} (diff ID ${layer.diffId}) is not in the content store`,
      );
    }
    const release = await this.lock(`layer-${hex}`);
    try {
      const again = this.meta(layer.diffId);
      if (again) return join(this.root, again.dir);
      const dirName = hex.slice(0, LAYER_DIR_LEN);
      const final = join(this.root, dirName);
      // A folder without its record was left by a crash between rename and record: redo it.
      if (fs.existsSync(final)) {
        const away = tempName(this.tmpDir, 'old-layer');
        fs.renameSync(final, away);
        fs.rmSync(away, { recursive: true, force: true });
      }
      // The layer unpacks to at least its blob's size: refused at once when that does not fit,
      // else watched while it unpacks (a small gzip blob can unpack to more than the disk).
      const space = new SpaceGuard(this.content.root, `layer ${layer.diffId}`);
      space.ensure(this.content.blobSize(layer.digest));
      const tmp = tempName(this.tmpDir, 'layer');
      fs.mkdirSync(tmp, { mode: 0o755 });
      try {
        const result = await applyLayer(
          this.content.openBlob(layer.digest, { highWaterMark: 1024 * 1024 }),
          tmp,
          { space },
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
        writeFileAtomic(this.metaPath(layer.diffId), JSON.stringify(meta), this.tmpDir);
        return final;
      } catch (e) {
        fs.rmSync(tmp, { recursive: true, force: true });
        throw e;
      }
    } finally {
      // The layer is recorded (or was not made): its lock file is not needed any more.
      release({ unlink: true });
    }
  }
}
