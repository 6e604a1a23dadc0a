import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { procStartTime } from '@corral/sys';
import { Decompress } from '../layer/compress.js';
import type { ContentStore } from './content.js';
import { digestHex } from './digest.js';
import { fsyncDir, readJsonFile, writeFileAtomic } from './fsutil.js';
import type { LayerMeta, LayerStore } from './layer-store.js';
import type { ImageRecord } from './types.js';

/** One thing `system check` found: what, and (with repair) what was done about it. */
export interface Finding {
  /** The part of the data root: `image`, `container`, `runtime`, `mount`, `cgroup`, `temp`. */
  area: string;
  problem: string;
  /** What the repair did; absent when nothing was (or could be) done. */
  repaired?: string;
}

/** What fsck needs of a store (its folders and parts), given by ImageStore. */
export interface StoreParts {
  root: string;
  imagesDir: string;
  refsPath: string;
  activeDir: string;
  content: ContentStore;
  layers: LayerStore;
  lock: (name: string) => Promise<() => void>;
}

export interface FsckResult {
  findings: Finding[];
  /** Unreferenced blobs and layers (garbage, not damage): `image prune` frees them. */
  reclaimable: { blobs: number; layers: number; bytes: number };
}

/**
 * Checks an image store whole: refs.json and every record parse, every name points at an
 * image, every blob holds what its digest says, every layer blob unpacks to its diff ID and
 * is unpacked, temp files and session marks belong to live processes. With `repair`, what
 * can be fixed without losing data is: damaged files and corrupt blobs are moved to
 * quarantine/ (never deleted), images that need a corrupt or missing blob are unregistered
 * (their names listed), missing unpacked layers are unpacked again from their blobs,
 * leftovers of dead writers are removed. Runs under the store's gc lock, so no prune or new
 * write session interleaves; a session already running is waited for by the caller.
 */
export async function fsckStore(s: StoreParts, repair: boolean): Promise<FsckResult> {
  const findings: Finding[] = [];
  const quarantine = join(s.root, 'quarantine');
  const setAside = (path: string): string => {
    fs.mkdirSync(quarantine, { recursive: true, mode: 0o700 });
    const to = join(quarantine, `${new Date().toISOString().replace(/[:.]/g, '-')}-${path.split('/').pop()}`);
    fs.renameSync(path, to);
    fsyncDir(quarantine);
    return to;
  };
  const add = (problem: string, fix?: () => string) => {
    const f: Finding = { area: 'image', problem };
    if (repair && fix) f.repaired = fix();
    findings.push(f);
  };
  const release = await s.lock('gc');
  try {
    // Leftovers of writers that died (a killed load or pull): their temp files and marks.
    for (const [dir, what] of [
      [s.content.tmpDir, 'temp file'],
      [s.activeDir, 'write-session mark'],
    ] as const) {
      for (const name of leftoverEntries(dir)) {
        const path = join(dir, name);
        add(`${what} ${path} left by a process that is gone`, () => {
          fs.rmSync(path, { recursive: true, force: true });
          return 'removed';
        });
      }
    }
    const writers = fs.readdirSync(s.activeDir).length;

    // refs.json
    let refs: Record<string, string> = {};
    try {
      refs = readJsonFile<{ refs: Record<string, string> }>(s.refsPath)?.refs ?? {};
    } catch (e) {
      add(`name file ${s.refsPath} is damaged (${why(e)}): every image name is in it`, () => {
        const to = setAside(s.refsPath);
        return `moved to ${to} (images stay, without names: tag them again)`;
      });
    }

    // Image records.
    const records = new Map<string, ImageRecord>();
    for (const n of fs.readdirSync(s.imagesDir)) {
      if (!/^[a-f0-9]{64}\.json$/.test(n)) continue;
      const path = join(s.imagesDir, n);
      try {
        const r = readJsonFile<ImageRecord>(path);
        if (r && (!r.manifestDigest || !Array.isArray(r.layers))) throw new Error('not an image record');
        if (r) records.set(r.manifestDigest, r);
      } catch (e) {
        add(`image record ${path} is damaged (${why(e)})`, () => `moved to ${setAside(path)}`);
      }
    }

    // Blobs against their digests (streamed: a blob may be bigger than memory).
    const corrupt = new Set<string>();
    for (const b of s.content.listBlobs()) {
      const actual = await hashFile(s.content.blobPath(b));
      if (actual === b) continue;
      corrupt.add(b);
      add(
        `blob ${b} holds data whose digest is ${actual}`,
        () => `moved to ${setAside(s.content.blobPath(b))}`,
      );
    }

    // Layer records.
    for (const file of fs.readdirSync(s.layers.metaDir)) {
      const path = join(s.layers.metaDir, file);
      let meta: LayerMeta | undefined;
      try {
        meta = readJsonFile<LayerMeta>(path);
      } catch (e) {
        add(`layer record ${path} is damaged (${why(e)})`, () => `moved to ${setAside(path)}`);
        continue;
      }
      if (meta && !fs.existsSync(join(s.layers.root, meta.dir)))
        add(`layer ${meta.diffId}: its folder ${join(s.layers.root, meta.dir)} is missing`, () => {
          fs.rmSync(path, { force: true });
          return 'record removed (unpacked again below when an image needs it)';
        });
    }

    // Every image: its blobs present and whole, its layers unpacking to their diff IDs.
    const checkedLayers = new Set<string>();
    for (const r of records.values()) {
      const blobs = [r.manifestDigest, r.configDigest, ...r.layers.map((l) => l.digest)];
      const bad = blobs.filter((d) => corrupt.has(d) || !fs.existsSync(s.content.blobPath(d)));
      for (const l of r.layers) {
        if (bad.includes(l.digest) || checkedLayers.has(l.digest)) continue;
        checkedLayers.add(l.digest);
        const diffId = await diffIdOf(s.content.blobPath(l.digest)).catch(
          (e: Error) => `unreadable (${e.message})`,
        );
        if (diffId !== l.diffId) {
          bad.push(l.digest);
          add(`layer blob ${l.digest} unpacks to ${diffId}, not to its diff ID ${l.diffId}`);
        }
      }
      const names = Object.entries(refs)
        .filter(([, d]) => d === r.manifestDigest)
        .map(([n]) => n);
      if (bad.length) {
        add(
          `image ${r.id} (${names.join(', ') || 'untagged'}) needs blobs that are missing or corrupt: ${bad.join(', ')}`,
          () => {
            fs.rmSync(join(s.imagesDir, `${digestHex(r.manifestDigest)}.json`), { force: true });
            for (const n of names) delete refs[n];
            records.delete(r.manifestDigest);
            return `unregistered${names.length ? ` with its names ${names.join(', ')}` : ''}: pull or load it again`;
          },
        );
        continue;
      }
      for (const l of r.layers) {
        if (metaOf(s.layers, l.diffId)) continue;
        add(`image ${r.id}: layer ${l.diffId} is not unpacked`);
        if (repair) {
          try {
            await s.layers.ensure(l);
            findings.at(-1)!.repaired = 'unpacked again from its blob';
          } catch (e) {
            findings.at(-1)!.problem += ` and cannot be unpacked again: ${(e as Error).message}`;
          }
        }
      }
    }

    // Names against records.
    let refsChanged = false;
    for (const [name, digest] of Object.entries(refs)) {
      if (records.has(digest)) continue;
      add(`name ${name} points at missing image ${digest}`, () => {
        delete refs[name];
        refsChanged = true;
        return 'name removed';
      });
    }
    if (repair && (refsChanged || findings.some((f) => f.repaired?.startsWith('unregistered')))) {
      const sorted = Object.fromEntries(Object.entries(refs).sort(([a], [b]) => a.localeCompare(b)));
      const unlock = await s.lock('refs');
      try {
        writeFileAtomic(s.refsPath, JSON.stringify({ refs: sorted }, null, 2), s.content.tmpDir);
      } finally {
        unlock();
      }
    }

    return { findings, reclaimable: writers ? { blobs: 0, layers: 0, bytes: 0 } : unreferenced(s, records) };
  } finally {
    release();
  }
}

/** Blobs and layers no image needs (left by interrupted writers, or by removals). */
function unreferenced(s: StoreParts, records: Map<string, ImageRecord>): FsckResult['reclaimable'] {
  const blobs = new Set<string>();
  const diffIds = new Set<string>();
  for (const r of records.values()) {
    for (const d of [r.manifestDigest, r.configDigest, ...r.layers.map((l) => l.digest)]) blobs.add(d);
    for (const l of r.layers) diffIds.add(l.diffId);
  }
  const out = { blobs: 0, layers: 0, bytes: 0 };
  for (const b of s.content.listBlobs()) {
    if (blobs.has(b)) continue;
    out.blobs++;
    out.bytes += s.content.blobSize(b);
  }
  for (const file of fs.readdirSync(s.layers.metaDir)) {
    const meta = metaOf(s.layers, undefined, join(s.layers.metaDir, file));
    if (!meta || diffIds.has(meta.diffId)) continue;
    out.layers++;
    out.bytes += meta.size;
  }
  return out;
}

/** A layer's record, or undefined when missing or damaged (reported on its own). */
function metaOf(layers: LayerStore, diffId?: string, path?: string): LayerMeta | undefined {
  try {
    return path ? readJsonFile<LayerMeta>(path) : layers.meta(diffId!);
  } catch {
    return undefined;
  }
}

/** The reason inside a damaged-state message (what JSON.parse said). */
function why(e: unknown): string {
  const m = /is damaged \((.*)\): run/.exec((e as Error).message);
  return m ? m[1] : (e as Error).message;
}

async function hashFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(fs.createReadStream(path, { highWaterMark: 1024 * 1024 }), hash);
  return `sha256:${hash.digest('hex')}`;
}

/** The sha256 of a layer blob once uncompressed (what its diff ID must be). */
async function diffIdOf(path: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(fs.createReadStream(path, { highWaterMark: 1024 * 1024 }), new Decompress(), hash);
  return `sha256:${hash.digest('hex')}`;
}

/**
 * Entries of a temp folder whose owner, named at the start of the name, is gone:
 * `<pid>.<start time>-...`, or `<pid>-...` as older versions wrote (judged by the PID alone).
 */
function leftoverEntries(dir: string): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  return names.filter((name) => {
    const m = /^(\d+)(?:\.(\d+))?(?:-|$)/.exec(name);
    if (!m) return true;
    const start = procStartTime(Number(m[1]));
    return start === null || (m[2] !== undefined && start !== Number(m[2]));
  });
}
