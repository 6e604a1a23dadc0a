import * as fs from 'node:fs';
import { join } from 'node:path';
import type { ContentStore } from './content.js';
import { sha256 } from './digest.js';
import type { LayerStore } from './layer-store.js';
import type { ImageRecord } from './types.js';

export interface Collected {
  deletedLayers: string[];
  deletedBlobs: string[];
  reclaimedBytes: number;
}

/** Deletes layers and blobs that none of `records` references (the caller holds the GC lock). */
export function collectUnused(records: ImageRecord[], layers: LayerStore, content: ContentStore): Collected {
  const result: Collected = { deletedLayers: [], deletedBlobs: [], reclaimedBytes: 0 };
  const blobs = new Set<string>();
  const diffIds = new Set<string>();
  for (const r of records) {
    blobs.add(r.manifestDigest);
    blobs.add(r.configDigest);
    for (const l of r.layers) {
      blobs.add(l.digest);
      diffIds.add(l.diffId);
    }
  }
  const keptDirs = new Set<string>();
  for (const { file, meta } of layers.allMeta()) {
    if (diffIds.has(meta.diffId)) {
      keptDirs.add(meta.dir);
      continue;
    }
    fs.rmSync(join(layers.metaDir, file), { force: true });
    result.reclaimedBytes += meta.size;
    result.deletedLayers.push(meta.diffId);
  }
  // Folders without a record: removed layers and leftovers of a crash.
  for (const d of fs.readdirSync(layers.root)) {
    if (!keptDirs.has(d)) fs.rmSync(join(layers.root, d), { recursive: true, force: true });
  }
  for (const b of content.listBlobs()) {
    if (blobs.has(b)) continue;
    result.reclaimedBytes += content.blobSize(b);
    content.deleteBlob(b);
    result.deletedBlobs.push(b);
  }
  return result;
}

/**
 * Problems in a store, empty when consistent: every name points at an image, every
 * image's blobs exist and its layers are unpacked, every blob holds what its name says.
 */
export function checkStore(
  recordList: ImageRecord[],
  refs: Record<string, string>,
  layers: LayerStore,
  content: ContentStore,
): string[] {
  const problems: string[] = [];
  const records = new Map(recordList.map((r) => [r.manifestDigest, r]));
  for (const [name, digest] of Object.entries(refs)) {
    if (!records.has(digest)) problems.push(`name ${name} points at missing image ${digest}`);
  }
  for (const r of records.values()) {
    for (const d of [r.manifestDigest, r.configDigest, ...r.layers.map((l) => l.digest)]) {
      if (!content.hasBlob(d)) problems.push(`image ${r.id}: blob ${d} missing`);
    }
    for (const l of r.layers) {
      const meta = layers.meta(l.diffId);
      if (!meta) problems.push(`image ${r.id}: layer ${l.diffId} not unpacked`);
      else if (!fs.existsSync(join(layers.root, meta.dir)))
        problems.push(`layer ${l.diffId}: folder missing`);
    }
  }
  for (const { meta } of layers.allMeta()) {
    if (!fs.existsSync(join(layers.root, meta.dir))) problems.push(`layer ${meta.diffId}: folder missing`);
  }
  for (const b of content.listBlobs()) {
    const size = content.blobSize(b);
    if (size < 64 * 1024 * 1024) {
      const actual = sha256(fs.readFileSync(content.blobPath(b)));
      if (actual !== b) problems.push(`blob ${b} holds data with digest ${actual}`);
    }
  }
  return problems;
}
