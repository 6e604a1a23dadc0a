// overlayfs's lookup and readdir rules, on the layers: an entry is the first one found from
// the top; a whiteout hides what is below it; folders merge with the folders of the same
// name below them until an opaque folder or a non-folder; readdir lists the union of the
// merged folders, higher layers first, whiteouts hiding names and never listed.
import type { Layers } from './layers.js';
import { DT_CHR, ENOENT, ENOTDIR, O_RDONLY, readEntries, S_IFDIR, S_IFMT } from './layers.js';
import { N, type NodeTable } from './nodes.js';

/** The fds of one folder node in each layer of its range, opened when first needed. */
export class DirFds {
  private readonly fds: Int32Array;

  constructor(
    private readonly L: Layers,
    readonly node: number,
  ) {
    this.fds = new Int32Array(L.count).fill(-1);
  }

  /** The folder's fd in `layer`, or -1 when that layer has none. */
  get(layer: number): number {
    const fd = this.fds[layer];
    if (fd !== -1) return fd < 0 ? -1 : fd;
    const r = this.L.openDir(layer, this.node);
    this.fds[layer] = r < 0 ? -2 : r;
    return r < 0 ? -1 : r;
  }

  /** Forgets the fd of `layer` (after the folder was made there). */
  reset(layer: number): void {
    if (this.fds[layer] >= 0) this.L.close(this.fds[layer]);
    this.fds[layer] = -1;
  }

  close(): void {
    for (const fd of this.fds) if (fd >= 0) this.L.close(fd);
    this.fds.fill(-1);
  }
}

/** Where a lookup found an entry. */
export interface Hit {
  top: number;
  bottom: number;
  dir: boolean;
  ino: number;
}

/**
 * Looks up `name` (NUL-terminated) in folder node `parent` from layer `from` down, by
 * overlayfs's rules. Returns 0 with `hit` filled and the top entry's statx in `topStx`, or
 * -ENOENT (nothing, or a whiteout), or another -errno.
 */
export function findChild(
  L: Layers,
  nodes: NodeTable,
  dirs: DirFds,
  name: Buffer,
  from: number,
  hit: Hit,
  topStx: Buffer,
): number {
  const parent = dirs.node;
  const bottom = nodes.get(parent, N.BOTTOM);
  let found = -1;
  for (let layer = from; layer <= bottom; layer++) {
    const fd = dirs.get(layer);
    if (fd < 0) continue;
    const r = L.stat(fd, name);
    if (r === -ENOENT || r === -ENOTDIR) continue;
    if (r < 0) return r;
    if (L.isWhiteout()) break;
    const isDir = (L.mode() & S_IFMT) === S_IFDIR;
    if (found < 0) {
      found = layer;
      L.stx.copy(topStx);
      hit.top = layer;
      hit.bottom = layer;
      hit.dir = isDir;
      hit.ino = L.ino(layer);
      if (!isDir || L.isOpaque(fd, name)) break;
    } else {
      if (!isDir) break;
      hit.bottom = layer;
      if (L.isOpaque(fd, name)) break;
    }
  }
  return found < 0 ? -ENOENT : 0;
}

/**
 * Is there an entry called `name` below the upper layer that a whiteout would have to hide?
 * (overlayfs's "lower positive"). Only for writable unions.
 */
export function lowerPositive(L: Layers, nodes: NodeTable, dirs: DirFds, name: Buffer): boolean {
  const bottom = nodes.get(dirs.node, N.BOTTOM);
  for (let layer = 1; layer <= bottom; layer++) {
    const fd = dirs.get(layer);
    if (fd < 0) continue;
    if (L.stat(fd, name) < 0) continue;
    return !L.isWhiteout();
  }
  return false;
}

/** One name of a merged listing. */
export interface Listed {
  name: Buffer;
  ino: number;
  /** DT_* type. */
  type: number;
  /** The layer of the entry shown. */
  layer: number;
}

/**
 * The merged listing of folder node `dir`: each visible name once, from the highest layer
 * that has it; whiteouts hide names of lower layers and are not listed.
 */
export function listMerged(L: Layers, nodes: NodeTable, dir: number): Listed[] | number {
  const top = nodes.get(dir, N.TOP);
  const bottom = nodes.get(dir, N.BOTTOM);
  const seen = new Set<string>();
  const out: Listed[] = [];
  for (let layer = top; layer <= bottom; layer++) {
    const fd = L.openDir(layer, dir, O_RDONLY);
    if (fd === -ENOENT || fd === -ENOTDIR) continue;
    // Anything else (ELOOP: a symlink where the folder was) is an error, never a way round.
    if (fd < 0) return fd;
    let failed = 0;
    const r = readEntries(fd, (name, ino, type) => {
      const key = name.toString('latin1');
      if (seen.has(key)) return;
      seen.add(key);
      if (type === DT_CHR || type === 0) {
        const z = Buffer.concat([name, ZERO]);
        const s = L.stat(fd, z);
        if (s < 0) {
          if (s !== -ENOENT) failed = s;
          return;
        }
        if (L.isWhiteout()) return;
        type = dtOf(L.mode());
        ino = L.ino(layer);
      } else ino = L.devMixed(ino, layer);
      out.push({ name, ino, type, layer });
    });
    L.close(fd);
    if (r < 0) return r;
    if (failed < 0) return failed;
  }
  return out;
}

const ZERO = Buffer.from([0]);

/** The DT_* type of a mode. */
export const dtOf = (mode: number): number => (mode & S_IFMT) >> 12;
