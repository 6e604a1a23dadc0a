// Folder listings. The merged listing is made when the kernel first reads a folder (at
// offset 0, which rewinddir sends again) and kept in a memfd as records, so that any thread
// can answer the next READDIR: the record's byte offset is the offset the kernel gets back.
// READDIRPLUS looks each entry up too, so that the kernel needs no LOOKUP for names it has
// just listed. Where the kernel allows (FUSE_NO_OPENDIR_SUPPORT), OPENDIR is answered ENOSYS
// once and never sent again, nor RELEASEDIR: a cached listing then costs no round trip at
// all (the kernel keeps listings of such folders, as with FOPEN_CACHE_DIR). READDIR then
// comes with no handle, and the listing being read belongs to the folder's node.
import { rawClose, rawFsync, rawFtruncate, rawMemfd, rawPread, rawPwrite } from '@corral/sys';
import { direntplusSize, direntSize, writeDirent } from '../codec.js';
import { FOPEN, INIT, SIZE } from '../kernel.js';
import { EMPTY_NAME, ENOENT, ENOTDIR, ESTALE } from './layers.js';
import { DirFds, listMerged } from './lookup.js';
import { N, NF } from './nodes.js';
import type { Op } from './ops-entry.js';
import { DIR_HANDLES, type Union } from './union.js';

const EMFILE = 24;
const EBADF = 9;
const MFD_CLOEXEC = 1;
const DT_DIR = 4;
/** Record header in the memfd: u64 ino, u16 name length, u8 type, u8 layer, u32 record length. */
const REC = 16;

// dirHandles slots: [node, memfd (or -1), bytes, in use (1 a handle, 2 a node's), node's generation]
const H_NODE = 0;
const H_FD = 1;
const H_BYTES = 2;
const H_USED = 3;
const H_GEN = 4;
const H_WORDS = 8;
const ENOSYS = 38;

let hint = 1;

export const opendir: Op = (u, req, out) => {
  const i = u.node(req.nodeid);
  if (!i) return ESTALE;
  if (!u.nodes.isDir(i)) return ENOTDIR;
  if (Math.floor(u.conn.flags / INIT.NO_OPENDIR_SUPPORT) % 2) return ENOSYS;
  const h = u.dirHandles;
  for (let k = 0; k < DIR_HANDLES; k++) {
    const slot = ((hint + k) % (DIR_HANDLES - 1)) + 1;
    if (h[slot * H_WORDS + H_USED]) continue;
    h[slot * H_WORDS + H_USED] = 1;
    h[slot * H_WORDS + H_NODE] = i;
    h[slot * H_WORDS + H_FD] = -1;
    h[slot * H_WORDS + H_BYTES] = 0;
    hint = slot + 1;
    const p = out.reserve(SIZE.OPEN_OUT);
    out.buf.writeUInt32LE(slot, p);
    // The kernel may keep the listing: every change goes through this server, which tells it.
    out.buf.writeUInt32LE(FOPEN.CACHE_DIR | FOPEN.KEEP_CACHE, p + 8);
    return 0;
  }
  return EMFILE;
};

export const releasedir: Op = (u, req) => {
  const slot = req.u32(0);
  if (slot > 0 && slot < DIR_HANDLES && u.dirHandles[slot * H_WORDS + H_USED] === 1) freeSlot(u, slot);
  return 0;
};

function freeSlot(u: Union, slot: number): void {
  const h = u.dirHandles;
  if (h[slot * H_WORDS + H_FD] >= 0) rawClose(h[slot * H_WORDS + H_FD]);
  if (h[slot * H_WORDS + H_USED] === 2) {
    const i = h[slot * H_WORDS + H_NODE];
    if (u.nodes.valid(i) && u.nodes.get(i, N.DIRSLOT) === slot) u.nodes.set(i, N.DIRSLOT, 0);
  }
  h[slot * H_WORDS + H_USED] = 0;
}

/** A node's listing slot that no longer belongs to it (the node was forgotten). */
function stale(u: Union, slot: number): boolean {
  const h = u.dirHandles;
  const i = h[slot * H_WORDS + H_NODE];
  return (
    h[slot * H_WORDS + H_USED] === 2 &&
    !(
      u.nodes.valid(i) &&
      u.nodes.get(i, N.GEN) === h[slot * H_WORDS + H_GEN] &&
      u.nodes.get(i, N.DIRSLOT) === slot
    )
  );
}

/**
 * The slot holding the listing of folder node `i` read without a handle: its own, or a new
 * one (taken from a forgotten node, or from anyone when all are in use: its reader then gets
 * the listing made again).
 */
function nodeSlot(u: Union, i: number): number {
  const h = u.dirHandles;
  const own = u.nodes.get(i, N.DIRSLOT);
  if (own && !stale(u, own) && h[own * H_WORDS + H_NODE] === i) return own;
  let slot = 0;
  for (let k = 0; k < DIR_HANDLES - 1 && !slot; k++) {
    const s = ((hint + k) % (DIR_HANDLES - 1)) + 1;
    if (!h[s * H_WORDS + H_USED] || stale(u, s)) slot = s;
  }
  if (!slot) {
    slot = (hint % (DIR_HANDLES - 1)) + 1;
    if (h[slot * H_WORDS + H_USED] !== 2) return -EMFILE;
  }
  if (h[slot * H_WORDS + H_USED]) freeSlot(u, slot);
  hint = slot + 1;
  h[slot * H_WORDS + H_USED] = 2;
  h[slot * H_WORDS + H_NODE] = i;
  h[slot * H_WORDS + H_GEN] = u.nodes.get(i, N.GEN);
  h[slot * H_WORDS + H_FD] = -1;
  h[slot * H_WORDS + H_BYTES] = 0;
  u.nodes.set(i, N.DIRSLOT, slot);
  return slot;
}

export const fsyncdir: Op = (u, req) => {
  const i = u.node(req.nodeid);
  if (!i || u.U < 0 || u.volatile || u.nodes.get(i, N.TOP) !== 0) return 0;
  const fd = u.L.openDir(0, i, 0);
  if (fd < 0) return 0;
  u.conn.yieldReader();
  rawFsync(fd);
  u.L.close(fd);
  return 0;
};

/** Writes the merged listing of the handle's folder into its memfd; -errno on failure. */
function snapshot(u: Union, slot: number): number {
  const h = u.dirHandles;
  const i = h[slot * H_WORDS + H_NODE];
  if (!u.nodes.valid(i) || u.nodes.flags(i) & NF.DELETED) return -ENOENT;
  // A big folder takes a while to list: another thread reads the next requests meanwhile.
  u.conn.yieldReader();
  const list = listMerged(u.L, u.nodes, i);
  if (typeof list === 'number') return list;
  // In byte order: readers that sort (libuv's scandir under Node's readdirSync, ls, glob)
  // sort an ordered listing at about half the cost of the layer's hash order (perf: their
  // merge sort and strcmp were all the difference in a warm listing served from the kernel).
  list.sort((a, b) => Buffer.compare(a.name, b.name));
  let fd = h[slot * H_WORDS + H_FD];
  if (fd < 0) {
    fd = rawMemfd('corral-readdir', MFD_CLOEXEC);
    if (fd < 0) return fd;
    h[slot * H_WORDS + H_FD] = fd;
  } else rawFtruncate(fd, 0);
  let size = 0;
  for (const e of list) size += (REC + e.name.length + 7) & ~7;
  size += 2 * (REC + 8);
  const buf = Buffer.alloc(size);
  let p = 0;
  const put = (name: Buffer, ino: number, type: number, layer: number) => {
    const len = (REC + name.length + 7) & ~7;
    buf.writeBigUInt64LE(BigInt(ino), p);
    buf.writeUInt16LE(name.length, p + 8);
    buf[p + 10] = type;
    buf[p + 11] = layer;
    buf.writeUInt32LE(len, p + 12);
    name.copy(buf, p + REC);
    p += len;
  };
  const parent = i === 1 ? 1 : u.nodes.get(i, N.PARENT);
  put(DOT, u.nodes.ino(i), DT_DIR, 255);
  put(DOTDOT, u.nodes.valid(parent) ? u.nodes.ino(parent) : u.nodes.ino(i), DT_DIR, 255);
  for (const e of list) {
    // A name the kernel knows keeps the inode number stat shows for it.
    const known = u.nodes.find(i, e.name);
    const ino = known ? u.nodes.ino(known) : e.layer === 0 && u.U === 0 ? u.shownIno(e.ino) : e.ino;
    put(e.name, ino, e.type, e.layer);
  }
  const w = rawPwrite(fd, buf, p, 0);
  if (w < 0) return w;
  h[slot * H_WORDS + H_BYTES] = p;
  return 0;
}

const DOT = Buffer.from('.');
const DOTDOT = Buffer.from('..');

/** Is `offset` where a record of the listing in `fd` starts? */
function onRecord(fd: number, offset: number): boolean {
  const head = Buffer.alloc(REC);
  for (let p = 0; p < offset; ) {
    if (rawPread(fd, head, REC, p) !== REC) return false;
    p += head.readUInt32LE(12);
    if (p === offset) return true;
  }
  return offset === 0;
}

function readdirAny(u: Union, req: Parameters<Op>[1], out: Parameters<Op>[2], plus: boolean): number {
  const fh = req.u64(0);
  const offset = req.u64(8);
  const size = Math.min(req.u32(16), out.room);
  const h = u.dirHandles;
  let slot = fh;
  if (fh === 0) {
    const i = u.node(req.nodeid);
    if (!i) return ESTALE;
    if (!u.nodes.isDir(i)) return ENOTDIR;
    slot = nodeSlot(u, i);
    if (slot < 0) return -slot;
  } else if (!(slot > 0 && slot < DIR_HANDLES && h[slot * H_WORDS + H_USED] === 1)) return EBADF;
  if (offset === 0 || h[slot * H_WORDS + H_FD] < 0) {
    const r = snapshot(u, slot);
    if (r < 0) return -r;
    // Made again in the middle of a reading (its slot was taken meanwhile): an offset that
    // is no longer a record's, as after a change of the folder, ends the listing.
    if (offset > 0 && !onRecord(h[slot * H_WORDS + H_FD], offset)) return 0;
  }
  const bytes = h[slot * H_WORDS + H_BYTES];
  if (offset >= bytes) {
    // The kernel has read to the end: a node's listing is done with.
    if (fh === 0) freeSlot(u, slot);
    return 0;
  }
  // Records are at most as long as the dirents made of them, plus a little.
  const chunk = Buffer.allocUnsafe(Math.min(bytes - offset, size + 4096));
  const got = rawPread(h[slot * H_WORDS + H_FD], chunk, chunk.length, offset);
  if (got < 0) return -got;
  const dir = h[slot * H_WORDS + H_NODE];
  const dirs = plus ? new DirFds(u.L, dir) : null;
  try {
    for (let p = 0; p + REC <= got; ) {
      const len = chunk.readUInt32LE(p + 12);
      if (p + len > got) break;
      const nameLen = chunk.readUInt16LE(p + 8);
      const name = chunk.subarray(p + REC, p + REC + nameLen);
      const type = chunk[p + 10];
      const layer = chunk[p + 11];
      const ino = Number(chunk.readBigUInt64LE(p));
      const next = offset + p + len;
      const need = plus ? direntplusSize(nameLen) : direntSize(nameLen);
      if (need > size - out.len) break;
      const at = out.reserve(need);
      if (plus) {
        let node = -1;
        if (layer !== 255 && dirs) {
          const z = Buffer.concat([name, EMPTY_NAME]);
          node = u.lookupNode(dirs, z, layer);
        }
        if (node > 0) u.writeEntryAt(out.buf, at, node);
        else out.buf.fill(0, at, at + SIZE.ENTRY_OUT);
        writeDirent(out.buf, at + SIZE.ENTRY_OUT, node > 0 ? u.nodes.ino(node) : ino, next, type, name);
      } else writeDirent(out.buf, at, ino, next, type, name);
      p += len;
    }
  } finally {
    dirs?.close();
  }
  return 0;
}

export const readdir: Op = (u, req, out) => readdirAny(u, req, out, false);
export const readdirplus: Op = (u, req, out) => readdirAny(u, req, out, true);
