// Operations on one entry: lookup and forget, attributes, symlink targets, statfs, xattrs.
import {
  rawFchmodat2,
  rawFchownat,
  rawFgetxattr,
  rawFlistxattr,
  rawFremovexattr,
  rawFsetxattr,
  rawFstatfs,
  rawFtruncate,
  rawLgetxattr,
  rawLlistxattr,
  rawLremovexattr,
  rawLsetxattr,
  rawReadlinkat,
  rawStatx,
  rawUtimensat,
  STX,
} from '@corral/sys';
import type { Reply, Request } from '../codec.js';
import { FATTR, GETATTR_FH, SIZE } from '../kernel.js';
import { NO_REPLY } from '../session.js';
import { copyUp, procPath } from './copyup.js';
import {
  AT_EMPTY_PATH,
  AT_SYMLINK_NOFOLLOW,
  EINVAL,
  ENAMETOOLONG,
  ENODATA,
  ENOENT,
  ENOTDIR,
  EOPNOTSUPP,
  ERANGE,
  ESTALE,
  O_WRONLY,
} from './layers.js';
import { N, NF } from './nodes.js';
import { FD, type Union } from './union.js';

/** Opcode handlers take the union, the request and the reply; they return 0, an errno or NO_REPLY. */
export type Op = (u: Union, req: Request, out: Reply) => number;

const deleted = (u: Union, i: number) => (u.nodes.flags(i) & NF.DELETED) !== 0;

export const lookup: Op = (u, req, out) => {
  const parent = u.node(req.nodeid);
  if (!parent) return ESTALE;
  if (!u.nodes.isDir(parent)) return ENOTDIR;
  const name = req.cname(0);
  if (name.length > 256) return ENAMETOOLONG;
  if (deleted(u, parent)) {
    u.replyNegative(out);
    return 0;
  }
  const dirs = u.dirs(parent);
  try {
    const i = u.lookupNode(dirs, name);
    if (i === -ENOENT) {
      u.replyNegative(out);
      return 0;
    }
    if (i < 0) return -i;
    u.replyEntry(out, i);
    return 0;
  } finally {
    dirs.close();
  }
};

export const forget: Op = (u, req) => {
  u.forgetNode(req.nodeid, req.u64(0));
  return NO_REPLY;
};

export const batchForget: Op = (u, req) => {
  const count = req.u32(0);
  for (let k = 0; k < count; k++) u.forgetNode(req.u64(8 + k * 16), req.u64(16 + k * 16));
  return NO_REPLY;
};

/** Stats node `i` the best way: through an open file of it when the kernel names one. */
function statFor(u: Union, i: number, fh: number): number {
  if (fh >= 0 && fh < u.fdState.length) {
    const s = u.fdState[fh];
    // A file opened on a lower layer before a copy-up no longer shows the union's entry.
    if (s & FD.OPEN && !(s & FD.LOWER && u.nodes.get(i, N.TOP) === 0)) return u.fstatInto(fh);
  }
  if (deleted(u, i)) return -ENOENT;
  return u.statNode(i);
}

export const getattr: Op = (u, req, out) => {
  const i = u.node(req.nodeid);
  if (!i) return ESTALE;
  const fh = req.u32(0) & GETATTR_FH ? req.u64(8) : -1;
  const r = statFor(u, i, fh);
  if (r < 0) return -r;
  u.replyAttr(out, i);
  return 0;
};

/**
 * Clears set-user-ID, and set-group-ID where group execute is set, as a write or truncate by
 * an unprivileged user does (the kernel leaves it to the server with HANDLE_KILLPRIV_V2).
 */
export function killSuidgid(dir: number, name: Buffer, at: number): number {
  const stx = Buffer.alloc(256);
  const r = rawStatx(dir, name, at, stx);
  if (r < 0) return r;
  const mode = stx.readUInt16LE(STX.mode);
  let keep = mode & 0o7777 & ~0o4000;
  if (mode & 0o10) keep &= ~0o2000;
  if (keep === (mode & 0o7777) || (mode & 0o170000) !== 0o100000) return 0;
  return rawFchmodat2(dir, name, keep, at);
}

const UTIME_NOW = (1 << 30) - 1;
const UTIME_OMIT = (1 << 30) - 2;

export const setattr: Op = (u, req, out) => {
  const i = u.node(req.nodeid);
  if (!i) return ESTALE;
  if (deleted(u, i)) return ENOENT;
  const valid = req.u32(0);
  const size = req.u64(16);
  const truncating = (valid & FATTR.SIZE) !== 0;
  let r = copyUp(u, i, !(truncating && size === 0));
  if (r < 0) return -r;
  const L = u.L;
  // The root and a nameless (O_TMPFILE) file are reached by an fd of their own.
  const tmp = u.tmpFd(i);
  if (tmp < -1) return -tmp;
  const nameless = i === 1 || tmp >= 0;
  const fd = nameless ? -1 : L.openDir(0, u.nodes.get(i, N.PARENT));
  if (!nameless && fd < 0) return -fd;
  const dir = i === 1 ? L.fds[0] : tmp >= 0 ? tmp : fd;
  const name = nameless ? Buffer.from([0]) : Buffer.from(u.nameOf(i));
  const at = nameless ? AT_EMPTY_PATH : AT_SYMLINK_NOFOLLOW;
  try {
    if (valid & (FATTR.UID | FATTR.GID)) {
      const uid = valid & FATTR.UID ? req.u32(76) : -1;
      const gid = valid & FATTR.GID ? req.u32(80) : -1;
      r = rawFchownat(dir, name, uid, gid, at);
      if (r < 0) return -r;
    }
    if (valid & FATTR.MODE) {
      r = rawFchmodat2(dir, name, req.u32(68) & 0o7777, at);
      if (r < 0) return -r;
    }
    if (truncating) {
      const fh = valid & FATTR.FH ? req.u64(8) : -1;
      const s = fh >= 0 && fh < u.fdState.length ? u.fdState[fh] : 0;
      if (s & FD.OPEN && !(s & FD.LOWER)) r = rawFtruncate(fh, size);
      else if (tmp >= 0) r = rawFtruncate(tmp, size);
      else {
        const f = L.openAt(dir, name, O_WRONLY);
        if (f < 0) return -f;
        r = rawFtruncate(f, size);
        L.close(f);
      }
      if (r < 0) return -r;
    }
    if (valid & (FATTR.ATIME | FATTR.MTIME)) {
      const t = Buffer.alloc(32);
      const put = (flag: number, now: number, o: number, sec: number, nsec: number) => {
        if (valid & now) t.writeBigInt64LE(BigInt(UTIME_NOW), o + 8);
        else if (valid & flag) {
          t.writeBigInt64LE(BigInt(req.i64(sec)), o);
          t.writeBigInt64LE(BigInt(req.u32(nsec)), o + 8);
        } else t.writeBigInt64LE(BigInt(UTIME_OMIT), o + 8);
      };
      put(FATTR.ATIME, FATTR.ATIME_NOW, 0, 32, 56);
      put(FATTR.MTIME, FATTR.MTIME_NOW, 16, 40, 60);
      r = rawUtimensat(dir, name, t, at);
      if (r < 0) return -r;
    }
    if (valid & FATTR.KILL_SUIDGID && !(valid & FATTR.MODE)) {
      r = killSuidgid(dir, name, at);
      if (r < 0) return -r;
    }
  } finally {
    if (fd >= 0) L.close(fd);
  }
  r = u.statNode(i);
  if (r < 0) return -r;
  u.replyAttr(out, i);
  return 0;
};

export const readlink: Op = (u, req, out) => {
  const i = u.node(req.nodeid);
  if (!i || i === 1) return ESTALE;
  if (deleted(u, i)) return ENOENT;
  const fd = u.L.openDir(u.nodes.get(i, N.TOP), u.nodes.get(i, N.PARENT));
  if (fd < 0) return -fd;
  const n = rawReadlinkat(fd, u.nameOf(i), out.buf.subarray(out.at(0), out.at(4096)));
  u.L.close(fd);
  if (n < 0) return -n;
  out.len = n;
  return 0;
};

export const statfs: Op = (u, _req, out) => {
  const st = Buffer.alloc(120);
  const r = rawFstatfs(u.L.fds[0], st);
  if (r < 0) return -r;
  const p = out.reserve(SIZE.STATFS_OUT);
  const b = out.buf;
  st.copy(b, p, 16, 56); // blocks, bfree, bavail, files, ffree
  b.writeUInt32LE(Number(st.readBigInt64LE(8)), p + 40); // bsize
  b.writeUInt32LE(Number(st.readBigInt64LE(64)), p + 44); // namelen
  b.writeUInt32LE(Number(st.readBigInt64LE(72)), p + 48); // frsize
  return 0;
};

export const access: Op = (u, req) => (u.node(req.nodeid) ? 0 : ESTALE);

const CAPABILITY = Buffer.from('security.capability\0');
const DOT = Buffer.from('.\0');

/** overlayfs's own xattrs are not shown through the union. */
const isPrivate = (name: Buffer) => name.toString('latin1').startsWith('trusted.overlay.');

/** How to reach node `i`'s entry for xattrs: a /proc path (and the fd to close after), or a nameless file's own fd. */
interface XattrTarget {
  path: Buffer;
  fd: number;
  tmp: number;
}

function entryPath(u: Union, i: number, layer: number): XattrTarget | number {
  // The root by "FD/.": the l*xattr calls would act on the /proc/self/fd/FD link itself.
  if (i === 1) return { path: procPath(u.L.fds[layer], DOT), fd: -1, tmp: -1 };
  const tmp = u.tmpFd(i);
  if (tmp < -1) return tmp;
  if (tmp >= 0) return { path: EMPTY_NAME_, fd: -1, tmp };
  const fd = u.L.openDir(layer, u.nodes.get(i, N.PARENT));
  if (fd < 0) return fd;
  return { path: procPath(fd, u.nameOf(i)), fd, tmp: -1 };
}
const EMPTY_NAME_ = Buffer.from([0]);

const xget = (e: XattrTarget, name: Buffer, buf: Buffer | null) =>
  e.tmp >= 0 ? rawFgetxattr(e.tmp, name, buf) : rawLgetxattr(e.path, name, buf);
const xlist = (e: XattrTarget, buf: Buffer | null) =>
  e.tmp >= 0 ? rawFlistxattr(e.tmp, buf) : rawLlistxattr(e.path, buf);

/** Replies an xattr value or list of `n` bytes: its size when the kernel asked with size 0. */
function replySized(out: Reply, size: number, n: number): number {
  if (size === 0) {
    out.reserve(SIZE.GETXATTR_OUT);
    out.buf.writeUInt32LE(n, out.at(0));
    return 0;
  }
  if (n > size) return ERANGE;
  out.len = n;
  return 0;
}

/**
 * A GETXATTR of security.capability of a file known to have none, answered without the
 * table's lock: the kernel asks it before the first write to a file (through passthrough
 * too), and that write need not wait for a change of the tree elsewhere, nor for the
 * copy-up of the file itself still waiting for the disk (ops-file.ts open). The kernel holds
 * the node while it asks, so its flags can be read without the lock.
 */
export const capabilityFree: Op = (u, req) => {
  const i = u.node(req.nodeid);
  const flags = i ? u.nodes.flags(i) : 0;
  return flags & NF.CLEAN && !(flags & NF.DELETED) && req.cname(8).equals(CAPABILITY) ? ENODATA : 0;
};

export const getxattr: Op = (u, req, out) => {
  const i = u.node(req.nodeid);
  if (!i) return ESTALE;
  if (deleted(u, i)) return ENOENT;
  const size = req.u32(0);
  const name = req.cname(8);
  if (isPrivate(name.subarray(0, name.length - 1))) return EOPNOTSUPP;
  // The kernel asks for this one before every first write to a file: a file made here has none.
  if (u.nodes.flags(i) & NF.CLEAN && name.equals(CAPABILITY)) return ENODATA;
  const e = entryPath(u, i, u.nodes.get(i, N.TOP));
  if (typeof e === 'number') return -e;
  const n = xget(e, name, size ? out.buf.subarray(out.at(0), out.at(Math.min(size, out.room))) : null);
  u.L.close(e.fd);
  if (n < 0) return -n;
  return replySized(out, size, n);
};

export const listxattr: Op = (u, req, out) => {
  const i = u.node(req.nodeid);
  if (!i) return ESTALE;
  if (deleted(u, i)) return ENOENT;
  const size = req.u32(0);
  const e = entryPath(u, i, u.nodes.get(i, N.TOP));
  if (typeof e === 'number') return -e;
  let n = xlist(e, null);
  let list = Buffer.alloc(0);
  if (n > 0) {
    list = Buffer.alloc(n);
    n = xlist(e, list);
  }
  u.L.close(e.fd);
  if (n < 0) return -n;
  const kept: Buffer[] = [];
  let start = 0;
  for (let k = 0; k < n; k++) {
    if (list[k] !== 0) continue;
    const item = list.subarray(start, k + 1);
    if (!isPrivate(item)) kept.push(item);
    start = k + 1;
  }
  const joined = Buffer.concat(kept);
  if (size === 0) return replySized(out, 0, joined.length);
  if (joined.length > size) return ERANGE;
  out.bytes(joined);
  return 0;
};

export const setxattr: Op = (u, req) => {
  const i = u.node(req.nodeid);
  if (!i) return ESTALE;
  if (deleted(u, i)) return ENOENT;
  const size = req.u32(0);
  const flags = req.u32(4);
  const name = Buffer.from(req.cname(8));
  if (isPrivate(name.subarray(0, name.length - 1))) return EOPNOTSUPP;
  const value = Buffer.from(req.bytes(8 + name.length, size));
  u.nodes.set(i, N.FLAGS, u.nodes.flags(i) & ~NF.CLEAN);
  const r = copyUp(u, i);
  if (r < 0) return -r;
  const e = entryPath(u, i, 0);
  if (typeof e === 'number') return -e;
  const w = e.tmp >= 0 ? rawFsetxattr(e.tmp, name, value, flags) : rawLsetxattr(e.path, name, value, flags);
  u.L.close(e.fd);
  return w < 0 ? -w : 0;
};

export const removexattr: Op = (u, req) => {
  const i = u.node(req.nodeid);
  if (!i) return ESTALE;
  if (deleted(u, i)) return ENOENT;
  const name = Buffer.from(req.cname(0));
  if (isPrivate(name.subarray(0, name.length - 1))) return EOPNOTSUPP;
  const r = copyUp(u, i);
  if (r < 0) return -r;
  const e = entryPath(u, i, 0);
  if (typeof e === 'number') return -e;
  const w = e.tmp >= 0 ? rawFremovexattr(e.tmp, name) : rawLremovexattr(e.path, name);
  u.L.close(e.fd);
  return w < 0 ? -w : 0;
};

export { EINVAL };
