import { createHash } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync, readlinkSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { lgetxattr, llistxattr } from '@corral/sys';
import { isWhiteout, OPAQUE_XATTR, REDIRECT_XATTR } from '../whiteout.js';

/** Lower layers are built with this mtime, so a kept time is told apart from "changed now". */
export const FIXED_TIME = new Date('2000-01-01T00:00:00Z');
const RECENT_AFTER = new Date('2001-01-01T00:00:00Z').getTime();

/** One entry of a tree snapshot: what a user (or a layer reader) can observe of it. */
export interface EntryRecord {
  type: 'file' | 'dir' | 'symlink' | 'fifo' | 'chardev' | 'blockdev' | 'socket' | 'whiteout';
  mode: string;
  uid: number;
  gid: number;
  /** The fixed time when it was kept or set on purpose, else "recent". */
  mtime: string;
  size?: number;
  nlink?: number;
  sha256?: string;
  target?: string;
  rdev?: number;
  /** Other paths of this snapshot that are the same inode (hard links). */
  links?: string[];
  xattrs: Record<string, string>;
}

export type Snapshot = Record<string, EntryRecord>;

function typeOf(st: Stats): EntryRecord['type'] {
  if (isWhiteout(st)) return 'whiteout';
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isFIFO()) return 'fifo';
  if (st.isCharacterDevice()) return 'chardev';
  if (st.isBlockDevice()) return 'blockdev';
  return 'socket';
}

/**
 * xattrs worth comparing: user.* everywhere, and in an upper layer the overlayfs markers that
 * make its format (opaque, redirect). Other trusted.overlay.* (origin, impure, uuid) are the
 * kernel's own bookkeeping of inode numbers, which a userspace backend need not write.
 */
function xattrsOf(path: string, layer: boolean): Record<string, string> {
  const out: Record<string, string> = {};
  const keep = (n: string) =>
    n.startsWith('user.') || (layer && (n === OPAQUE_XATTR || n === REDIRECT_XATTR));
  for (const name of llistxattr(path).filter(keep).sort()) {
    out[name] = lgetxattr(path, name)?.toString('hex') ?? '';
  }
  return out;
}

/**
 * Records a tree: type, mode, owner, content hash, link target, xattrs, hard links. `layer`
 * says the tree is an upper layer (whiteouts and opaque markers are part of it).
 */
export function snapshot(root: string, layer = false): Snapshot {
  const out: Snapshot = {};
  const inodes = new Map<string, string[]>();
  const walk = (rel: string) => {
    for (const name of readdirSync(join(root, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const path = join(root, r);
      const st = lstatSync(path);
      const type = typeOf(st);
      const rec: EntryRecord = {
        type,
        mode: (st.mode & 0o7777).toString(8),
        uid: st.uid,
        gid: st.gid,
        mtime: st.mtimeMs < RECENT_AFTER ? new Date(st.mtimeMs).toISOString() : 'recent',
        xattrs: type === 'symlink' ? {} : xattrsOf(path, layer),
      };
      if (type === 'symlink') {
        rec.target = readlinkSync(path);
        delete (rec as Partial<EntryRecord>).mode; // always 777
      }
      if (type === 'file') {
        rec.size = st.size;
        rec.nlink = st.nlink;
        rec.sha256 = createHash('sha256').update(readFileSync(path)).digest('hex');
        if (st.nlink > 1) {
          const key = `${st.dev}:${st.ino}`;
          inodes.set(key, [...(inodes.get(key) ?? []), r]);
        }
      }
      if (type === 'chardev' || type === 'blockdev') rec.rdev = st.rdev;
      out[r] = rec;
      if (type === 'dir') walk(r);
    }
  };
  walk('');
  for (const paths of inodes.values()) {
    for (const p of paths) out[p].links = paths.filter((q) => q !== p);
  }
  return out;
}
