// The image list read from a store's files, without an ImageStore: opening one tidies its
// folders and brings the code of pulls, imports and removal, which `corral images` (issue 15)
// neither needs nor should pay for at start. ImageStore.list is this same function.
import * as fs from 'node:fs';
import { join } from 'node:path';
import { readJsonFile } from './fsutil.js';
import { type LayerMeta, layerMetaPath } from './layer-store.js';
import { orphans } from './owner.js';
import { familiarName } from './reference.js';
import type { ImageRecord, ImageSummary, LayerRecord } from './types.js';

/** The image records in a store's images/ folder (none when the store has no such folder yet). */
export function imageRecords(imagesDir: string): ImageRecord[] {
  let names: string[];
  try {
    names = fs.readdirSync(imagesDir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const out: ImageRecord[] = [];
  for (const n of names) {
    if (!/^[a-f0-9]{64}\.json$/.test(n)) continue;
    const r = readJsonFile<ImageRecord>(join(imagesDir, n));
    if (r) out.push(r);
  }
  return out;
}

/** A layer's unpacked size in the store at `root`, from its record (else the image's word). */
export function layerSize(root: string, l: LayerRecord): number {
  return readJsonFile<LayerMeta>(layerMetaPath(root, l.diffId))?.size ?? l.size;
}

/** `docker images` of the store at `root`: newest first, each with its short names and size. */
export function listImages(root: string): ImageSummary[] {
  const refs = Object.entries(
    readJsonFile<{ refs: Record<string, string> }>(join(root, 'refs.json'))?.refs ?? {},
  );
  return (
    imageRecords(join(root, 'images'))
      .filter((r) => !r.removed)
      .map((r) => ({
        id: r.id,
        manifestDigest: r.manifestDigest,
        repoTags: refs.filter(([, d]) => d === r.manifestDigest).map(([n]) => familiarName(n)),
        created: r.created,
        size: r.layers.reduce((s, l) => s + layerSize(root, l), 0),
      }))
      // Newest first, by code unit: RFC 3339 times order so (localeCompare's collator costs
      // ~8 ms to set up at its first call, a good part of an `images`).
      .sort((a, b) => {
        const [x, y] = [a.created ?? '', b.created ?? ''];
        return x < y ? 1 : x > y ? -1 : 0;
      })
  );
}

/**
 * Whether the store at `root` holds what a killed process left in its temp folders (tmp/ and
 * locks/active/), which opening an ImageStore removes: a listing that does not open one asks.
 */
export function storeLeftovers(root: string): boolean {
  return orphans(join(root, 'tmp')).length > 0 || orphans(join(root, 'locks', 'active')).length > 0;
}
