// The union filesystem's per-thread context: the shared node table, the layers, and the
// helpers every operation uses (resolve a node, look a name up, stat, write entries and
// attributes). The operations themselves are in ops-*.ts.
import { rawClose, STX } from '@corral/sys';
import { type Reply, writeAttr, writeEntry } from '../codec.js';
import { SIZE } from '../kernel.js';
import type { Connection } from '../session.js';
import { createInoMap, InoMap, type InoMapBuffers } from './inomap.js';
import { AT_EMPTY_PATH, AT_SYMLINK_NOFOLLOW, EMPTY_NAME, type Layers, S_IFDIR, S_IFMT } from './layers.js';
import { DirFds, findChild, type Hit } from './lookup.js';
import { N, NF, type NodeTable } from './nodes.js';

const ENOENT_ = 2;

/** How long the kernel may keep names and attributes: nothing changes them behind our back. */
export const TTL = 365 * 86400;

/** Flags of an open file, by fd, in the shared fd table. */
export const FD = {
  OPEN: 1,
  /** Opened on a lower layer for reading: moved to the upper copy after a copy-up. */
  LOWER: 2,
  PASSTHROUGH: 4,
  CACHED: 8,
  DIR: 16,
  /** Opened by a copy-up answered before its data was on disk and linked in (ops-file.ts open). */
  SYNCING: 32,
} as const;

/** Shared tables besides the nodes. */
export interface SharedTables {
  /** Flags by fd (FD.*). */
  fdState: SharedArrayBuffer;
  /** Per folder handle or listing being read: 8 words (ops-readdir.ts). */
  dirHandles: SharedArrayBuffer;
  /** Size by fd, of files opened on a lower layer (they never change). */
  fdSize: SharedArrayBuffer;
  /**
   * Upper inode number of a copied-up entry -> the number it had below, which the union
   * keeps showing for the life of the mount (overlayfs keeps it in an origin xattr).
   */
  origins: InoMapBuffers;
}

export const FD_SLOTS = 1 << 16;
export const DIR_HANDLES = 1 << 14;

export function createTables(): SharedTables {
  return {
    fdState: new SharedArrayBuffer(FD_SLOTS * 4),
    dirHandles: new SharedArrayBuffer(DIR_HANDLES * 32),
    fdSize: new SharedArrayBuffer(FD_SLOTS * 8),
    origins: createInoMap(),
  };
}

export class Union {
  /** The statx of the entry the last lookup or stat found. */
  readonly topStx = Buffer.alloc(256);
  readonly hit: Hit = { top: 0, bottom: 0, dir: false, ino: 0 };
  /** Upper's layer index, -1 in a read-only union. */
  readonly U: number;
  readonly fdState: Int32Array;
  readonly dirHandles: Int32Array;
  readonly fdSize: Float64Array;
  readonly origins: InoMap;
  conn!: Connection;
  private readonly nameZ = Buffer.alloc(260);

  constructor(
    readonly nodes: NodeTable,
    readonly L: Layers,
    tables: SharedTables,
    /** overlayfs's `volatile`: syncs are skipped. */
    readonly volatile = false,
  ) {
    this.U = L.writable ? 0 : -1;
    this.fdState = new Int32Array(tables.fdState);
    this.dirHandles = new Int32Array(tables.dirHandles);
    this.fdSize = new Float64Array(tables.fdSize);
    this.origins = new InoMap(tables.origins);
  }

  /** The inode number the union shows for upper's inode number `uino`. */
  shownIno(uino: number): number {
    return this.origins.get(uino) || uino;
  }

  /**
   * Called when a name of an upper entry (upper inode number `uino`, `nlink` links before)
   * has been removed: once its inode has no name left, its number may be reused, and neither
   * its kept number nor its node may be found by it again.
   */
  upperGone(uino: number, nlink: number, isDir: boolean, node: number): void {
    if (!isDir && nlink > 1) return;
    this.origins.delete(uino);
    if (this.nodes.valid(node) && this.nodes.uino(node) === uino) this.nodes.unhashLinks(node);
  }

  /** The node a request names, or 0 when the kernel names none we know (stale). */
  node(nodeid: number): number {
    return this.nodes.valid(nodeid) && !(this.nodes.flags(nodeid) & NF.ALIAS) ? nodeid : 0;
  }

  /** Node `i`'s name with a NUL, in a per-thread buffer (valid until the next call). */
  nameOf(i: number): Buffer {
    const name = this.nodes.name(i);
    name.copy(this.nameZ);
    this.nameZ[name.length] = 0;
    return this.nameZ.subarray(0, name.length + 1);
  }

  /**
   * Looks `name` (NUL-terminated) up in folder node `dirs.node` and makes or updates its node
   * (without counting a kernel lookup). Returns the node, or -errno; `topStx` holds its stat.
   */
  lookupNode(dirs: DirFds, name: Buffer, from?: number): number {
    const parent = dirs.node;
    const r = findChild(
      this.L,
      this.nodes,
      dirs,
      name,
      from ?? this.nodes.get(parent, N.TOP),
      this.hit,
      this.topStx,
    );
    const bare = name.subarray(0, name.length - 1);
    const nodes = this.nodes;
    let i = nodes.find(parent, bare);
    if (r < 0) {
      if (i) nodes.detach(i);
      return r;
    }
    const h = this.hit;
    if (i && nodes.isDir(i) !== h.dir) {
      nodes.detach(i);
      i = 0;
    }
    const uino = h.top === 0 && this.U === 0 ? h.ino : 0;
    if (uino) h.ino = this.shownIno(uino);
    // A file with several names in upper is one node, whichever name the kernel asks for.
    const linked = uino !== 0 && !h.dir && this.topStx.readUInt32LE(STX.nlink) > 1;
    if (!i) {
      const p = linked ? nodes.links.get(uino) : 0;
      if (p && nodes.valid(p)) {
        if (nodes.flags(p) & NF.DELETED) {
          nodes.move(p, parent, bare);
          i = p;
        } else i = nodes.insertAlias(parent, bare, p);
      } else {
        i = nodes.insert(parent, bare, h.dir ? NF.DIR : 0, h.top, h.bottom, h.ino);
        if (linked) nodes.hashLinks(i, uino);
      }
    } else if (!(nodes.flags(i) & NF.ALIAS)) {
      nodes.set(i, N.TOP, h.top);
      nodes.set(i, N.BOTTOM, h.bottom);
      if (linked && !nodes.uino(i) && !nodes.links.get(uino)) nodes.hashLinks(i, uino);
    }
    return i;
  }

  /** The upper inode number of the entry the last lookup found (0 when it is not in upper). */
  foundUpperIno(): number {
    return this.hit.top === 0 && this.U === 0
      ? this.L.devMixed(Number(this.topStx.readBigUInt64LE(STX.ino)), 0)
      : 0;
  }

  /** lstat of node `i`'s top entry into `topStx`; 0 or -errno. */
  statNode(i: number): number {
    const L = this.L;
    const top = this.nodes.get(i, N.TOP);
    if (i === 1) return this.statInto(L.fds[top], EMPTY_NAME, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
    const tmp = this.tmpFd(i);
    if (tmp !== -1) return tmp < 0 ? tmp : this.fstatInto(tmp);
    const fd = L.openDir(top, this.nodes.get(i, N.PARENT));
    if (fd < 0) return fd;
    const r = this.statInto(fd, this.nameOf(i), AT_SYMLINK_NOFOLLOW);
    L.close(fd);
    return r;
  }

  /** fstat of an open fd into `topStx`. */
  fstatInto(fd: number): number {
    return this.statInto(fd, EMPTY_NAME, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
  }

  private statInto(fd: number, name: Buffer, flags: number): number {
    const r = flags & AT_EMPTY_PATH ? this.L.fstat(fd) : this.L.stat(fd, name);
    if (r === 0) this.L.stx.copy(this.topStx);
    return r;
  }

  /** Fixes `topStx` as the union shows node `i`: merged folders have one link, as in overlayfs. */
  private adjust(i: number): void {
    const s = this.topStx;
    if (
      (s.readUInt16LE(STX.mode) & S_IFMT) === S_IFDIR &&
      this.nodes.get(i, N.BOTTOM) > this.nodes.get(i, N.TOP)
    )
      s.writeUInt32LE(1, STX.nlink);
  }

  /**
   * The attribute timeout for `topStx` of node `i`: none for a lower file with several links
   * (a copy-up of another name, a node of its own, changes its count). Links in upper are
   * one node, whose changes the kernel sees.
   */
  private attrTtl(i: number): number {
    const s = this.topStx;
    return (s.readUInt16LE(STX.mode) & S_IFMT) !== S_IFDIR &&
      s.readUInt32LE(STX.nlink) > 1 &&
      this.U >= 0 &&
      this.nodes.get(i, N.TOP) !== 0
      ? 0
      : TTL;
  }

  /** Replies a fuse_entry_out for node `i` (whose stat is in `topStx`) and counts the lookup. */
  replyEntry(out: Reply, i: number): void {
    this.writeEntryAt(out.buf, out.reserve(SIZE.ENTRY_OUT), i);
  }

  /** Writes an entry at `p` (for READDIRPLUS) and counts the lookup; `i` may be an alias. */
  writeEntryAt(buf: Buffer, p: number, alias: number): void {
    const i = this.nodes.kernelNode(alias);
    this.adjust(i);
    writeEntry(buf, p, i, this.nodes.get(i, N.GEN), TTL, this.attrTtl(i), this.topStx, this.nodes.ino(i));
    this.nodes.ref(i);
  }

  /** Replies a negative entry the kernel may keep (the name is absent). */
  replyNegative(out: Reply): void {
    const p = out.reserve(SIZE.ENTRY_OUT);
    writeEntry(out.buf, p, 0, 0, TTL, 0, null, 0);
  }

  /** Replies a fuse_attr_out for node `i` from `topStx`. */
  replyAttr(out: Reply, i: number): void {
    this.adjust(i);
    const p = out.reserve(SIZE.ATTR_OUT);
    const ttl = this.attrTtl(i);
    out.buf.writeUInt32LE(ttl, p);
    out.buf.writeUInt32LE(0, p + 4);
    writeAttr(out.buf, p + 16, this.topStx, this.nodes.ino(i));
  }

  /** FORGET: drops `count` kernel lookups of a node. */
  forgetNode(id: number, count: number): void {
    if (!this.nodes.valid(id)) return;
    const tmp = this.tmpFd(id);
    this.nodes.forget(id, count);
    this.closeIfFreed(id, tmp);
  }

  /** For a nameless (O_TMPFILE) node, its fd (or -ENOENT); -1 for any other node. */
  tmpFd(i: number): number {
    if (!(this.nodes.flags(i) & NF.TMPFILE)) return -1;
    const fd = this.nodes.get(i, N.TMPFD);
    return fd > 0 ? fd : -ENOENT_;
  }

  /** Closes a nameless node's fd `tmp` once its slot was freed (forgotten, last file closed). */
  closeIfFreed(i: number, tmp: number): void {
    if (tmp >= 0 && !(this.nodes.valid(i) && this.nodes.flags(i) & NF.TMPFILE)) rawClose(tmp);
  }

  /** The folder fds of node `i` (close them after use). */
  dirs(i: number): DirFds {
    return new DirFds(this.L, i);
  }
}
