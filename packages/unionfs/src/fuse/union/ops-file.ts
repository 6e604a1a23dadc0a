// Open files. Files in upper (and every file of a read-only union) are opened in passthrough
// mode where the kernel offers it: reads, writes and mmap go straight to the layer's file and
// never reach this server. All open files of one node share one backing id, as the kernel
// requires. A file of a lower layer opened for reading is served by READ instead (cached by
// the kernel), so that a copy-up while it is open shows through it as overlayfs shows it.
import {
  fuseBackingClose,
  fuseBackingOpen,
  rawClose,
  rawCopyFileRange,
  rawDup3,
  rawFallocate,
  rawFchmod,
  rawFchown,
  rawFsync,
  rawLseek,
  rawOpenat,
  rawPipe,
  rawPread,
  rawPwrite,
  rawSplice,
  rawWrite,
  SPLICE,
  STX,
} from '@corral/sys';
import { type Reply, type Request, writeU64 } from '../codec.js';
import { FOPEN, FSYNC_FDATASYNC, OPEN_KILL_SUIDGID, SIZE, WRITE_KILL_SUIDGID } from '../kernel.js';
import { NO_REPLY } from '../session.js';
import { copyUp, procPath } from './copyup.js';
import {
  AT_EMPTY_PATH,
  EBADF,
  EINVAL,
  EISDIR,
  EMPTY_NAME,
  ENOENT,
  EROFS,
  ESTALE,
  O_CLOEXEC,
  O_CREAT,
  O_EXCL,
  O_NOFOLLOW,
  O_RDONLY,
  O_RDWR,
  O_TMPFILE,
  O_TRUNC,
} from './layers.js';
import { N, NF } from './nodes.js';
import { createEntry, prepareCreate } from './ops-dir.js';
import { killSuidgid, type Op } from './ops-entry.js';
import { FD, type Union } from './union.js';

const O_ACCMODE = 3;
const AT_FDCWD = -100;
const DOT_Z = Buffer.from('.\0');
const O_DIRECT = 0o40000;
const S_ISUID = 0o4000;
const S_ISGID = 0o2000;
/** Flags of the user's open kept on the server's own fd. */
const KEPT = O_DIRECT;
let passthroughBroken = false;

/**
 * Opens node `i`'s file for a new open file of the kernel (`fd` given when it is already
 * open, as after CREATE) and writes fuse_open_out at `p`. Returns 0 or -errno.
 */
function openFile(u: Union, i: number, flags: number, out: Reply, fdGiven = -1): number {
  const nodes = u.nodes;
  const top = nodes.get(i, N.TOP);
  const writable = (flags & O_ACCMODE) !== O_RDONLY;
  const inUpper = top === u.U || u.U < 0;
  let passthrough = u.conn.passthrough && !passthroughBroken && inUpper && nodes.get(i, N.CACHED_OPENS) === 0;
  let fd = fdGiven;
  const tmp = u.tmpFd(i);
  if (fd < 0 && tmp !== -1) {
    // A nameless file opened again (through /proc/PID/fd): by its own fd's /proc path.
    if (tmp < 0) return tmp;
    fd = rawOpenat(AT_FDCWD, Buffer.from(`/proc/self/fd/${tmp}\0`), O_RDWR | O_CLOEXEC | (flags & KEPT));
    if (fd < 0) return fd;
  }
  if (fd < 0) {
    const dir = u.L.openDir(top, nodes.get(i, N.PARENT));
    if (dir < 0) return dir;
    // Upper files are opened read-write (one backing file serves readers and writers).
    const access = u.U < 0 || top !== 0 ? O_RDONLY : passthrough || writable ? O_RDWR : O_RDONLY;
    fd = u.L.openAt(dir, u.nameOf(i), access | (flags & (KEPT | O_TRUNC)));
    u.L.close(dir);
    if (fd < 0) return fd;
  }
  if (fd >= u.fdState.length) {
    rawClose(fd);
    return -EMFILE;
  }
  let backing = 0;
  if (passthrough) {
    backing = nodes.get(i, N.BACKING);
    if (!backing) {
      const id = fuseBackingOpen(u.conn.devFd, fd);
      if (id < 0) {
        // EPERM (no CAP_SYS_ADMIN) or a kernel without passthrough: READ and WRITE from now on.
        passthroughBroken = true;
        passthrough = false;
      } else {
        backing = id;
        nodes.set(i, N.BACKING, id);
      }
    }
  }
  const p = out.reserve(SIZE.OPEN_OUT);
  out.buf.writeUInt32LE(fd, p);
  if (passthrough) {
    nodes.set(i, N.PT_OPENS, nodes.get(i, N.PT_OPENS) + 1);
    u.fdState[fd] = FD.OPEN | FD.PASSTHROUGH;
    out.buf.writeUInt32LE(FOPEN.PASSTHROUGH | FOPEN.NOFLUSH, p + 8);
    out.buf.writeInt32LE(backing, p + 12);
  } else {
    nodes.set(i, N.CACHED_OPENS, nodes.get(i, N.CACHED_OPENS) + 1);
    const lower = top > 0 && u.U >= 0;
    u.fdState[fd] = FD.OPEN | FD.CACHED | (lower ? FD.LOWER : 0);
    if (lower) u.fdSize[fd] = u.L.fstat(fd) === 0 ? Number(u.L.stx.readBigUInt64LE(STX.size)) : -1;
    // Lower files never change: the kernel may keep their pages from one open to the next.
    out.buf.writeUInt32LE((top > 0 || u.U < 0 ? FOPEN.KEEP_CACHE : 0) | FOPEN.NOFLUSH, p + 8);
  }
  return 0;
}
const EMFILE = 24;

export const open: Op = (u, req, out) => {
  const i = u.node(req.nodeid);
  if (!i) return ESTALE;
  if (u.nodes.isDir(i)) return EISDIR;
  if (u.nodes.flags(i) & NF.DELETED) return ENOENT;
  const flags = req.u32(0);
  if ((flags & O_ACCMODE) !== O_RDONLY || flags & O_TRUNC) {
    if (u.U < 0) return EROFS;
    // The copy-up's wait for the disk comes after the answer: the kernel gets the copy (a
    // nameless file until it is linked) to use at once, while this thread, still holding the
    // table's lock, fsyncs and links it in; nothing sees the file in upper before its data is
    // on disk (as with overlayfs), and an fsync of this open file waits for the link.
    let opened = -1;
    const early = (copy: number): number => {
      const fd = rawOpenat(AT_FDCWD, procPath(copy, null), O_RDWR | O_CLOEXEC | (flags & KEPT));
      if (fd < 0) return fd;
      const o = openFile(u, i, flags, out, fd);
      if (o < 0) return o;
      opened = out.buf.readUInt32LE(out.at(0));
      Atomics.or(u.fdState, opened, FD.SYNCING);
      u.conn.reply(req, out);
      return 0;
    };
    const r = copyUp(u, i, !(flags & O_TRUNC), early);
    if (opened >= 0) {
      Atomics.and(u.fdState, opened, ~FD.SYNCING);
      if (r < 0)
        process.stderr.write(`corral fuse: a copy-up failed after its open was answered: errno ${-r}\n`);
      return NO_REPLY;
    }
    if (r < 0) return -r;
  }
  const r = openFile(u, i, flags, out);
  if (r < 0) return -r;
  if (flags & O_TRUNC && req.u32(4) & OPEN_KILL_SUIDGID) {
    const fd = out.buf.readUInt32LE(out.at(0));
    killSuidgid(fd, EMPTY_NAME, AT_EMPTY_PATH);
  }
  return 0;
};

export const create: Op = (u, req, out) => {
  const parent = u.node(req.nodeid);
  if (!parent) return ESTALE;
  const flags = req.u32(0);
  const name = req.cname(16);
  const t = prepareCreate(u, req, parent, req.u32(8) & 0o777);
  if (typeof t === 'number') return -t;
  const mode = req.u32(4) & 0o7777 & ~t.umask;
  let fd = -1;
  const make = (dirfd: number, n: Buffer) => {
    const r = rawOpenat(
      dirfd,
      n,
      O_CREAT | O_EXCL | O_RDWR | O_NOFOLLOW | O_CLOEXEC | (flags & O_DIRECT),
      mode,
    );
    if (r >= 0) fd = r;
    return Math.min(r, 0);
  };
  let r = createEntry(u, t, name, false, make);
  // chown clears set-user-ID and set-group-ID: give the mode asked for.
  if (r >= 0 && (t.uid !== 0 || t.gid !== 0) && mode & (S_ISUID | S_ISGID)) r = rawFchmod(fd, mode);
  if (r >= 0) r = u.fstatInto(fd);
  if (r < 0) {
    if (fd >= 0) rawClose(fd);
    return -r;
  }
  const bare = name.subarray(0, name.length - 1);
  const old = u.nodes.find(parent, bare);
  if (old) u.nodes.detach(old);
  const ino = Number(u.topStx.readBigUInt64LE(STX.ino));
  const i = u.nodes.insert(parent, bare, NF.CLEAN, 0, 0, u.L.devMixed(ino, 0));
  u.replyEntry(out, i);
  const o = openFile(u, i, flags, out, fd);
  if (o < 0) {
    rawClose(fd);
    return -o;
  }
  return 0;
};

/**
 * TMPFILE (O_TMPFILE): a nameless file in the folder's upper copy, made as CREATE makes one.
 * The node keeps a fd of its own to reach it (stat, setattr, a second open, LINK by
 * AT_EMPTY_PATH); the kernel counts the link the reply reports down to none itself.
 */
export const tmpfile: Op = (u, req, out) => {
  const parent = u.node(req.nodeid);
  if (!parent) return ESTALE;
  const flags = req.u32(0);
  const t = prepareCreate(u, req, parent, req.u32(8) & 0o777);
  if (typeof t === 'number') return -t;
  const mode = req.u32(4) & 0o7777 & ~t.umask;
  try {
    const fd = rawOpenat(
      t.upperDir,
      DOT_Z,
      O_TMPFILE | O_RDWR | O_CLOEXEC | (flags & (O_DIRECT | O_EXCL)),
      mode,
    );
    if (fd < 0) return -fd;
    let r = t.uid !== 0 || t.gid !== 0 ? rawFchown(fd, t.uid, t.gid) : 0;
    if (r >= 0 && (t.uid !== 0 || t.gid !== 0) && mode & (S_ISUID | S_ISGID)) r = rawFchmod(fd, mode);
    const own = r >= 0 ? rawOpenat(AT_FDCWD, Buffer.from(`/proc/self/fd/${fd}\0`), O_RDWR | O_CLOEXEC) : r;
    if (own >= 0) r = u.fstatInto(fd);
    if (r < 0 || own < 0) {
      rawClose(fd);
      if (own >= 0) rawClose(own);
      return -Math.min(r, own);
    }
    const ino = Number(u.topStx.readBigUInt64LE(STX.ino));
    // A name no lookup can ask for (the kernel sends none with a NUL).
    const i = u.nodes.insert(
      parent,
      Buffer.from(`\0${own}`),
      NF.CLEAN | NF.TMPFILE,
      0,
      0,
      u.L.devMixed(ino, 0),
    );
    u.nodes.set(i, N.TMPFD, own);
    u.topStx.writeUInt32LE(1, STX.nlink);
    u.replyEntry(out, i);
    const o = openFile(u, i, flags, out, fd);
    if (o < 0) {
      rawClose(fd);
      return -o;
    }
    return 0;
  } finally {
    u.L.close(t.upperDir);
  }
};

/**
 * A cached file opened on a lower layer before its copy-up now reads the copy: its fd is
 * replaced in place (dup3) by the upper file's, as overlayfs switches its real file.
 */
function followCopyUp(u: Union, i: number, fd: number): void {
  u.nodes.lock();
  try {
    if (!(u.fdState[fd] & FD.LOWER) || u.nodes.get(i, N.TOP) !== 0) return;
    const dir = u.L.openDir(0, u.nodes.get(i, N.PARENT));
    if (dir < 0) return;
    const up = u.L.openAt(dir, u.nameOf(i), O_RDONLY);
    u.L.close(dir);
    if (up < 0) return;
    rawDup3(up, fd, O_CLOEXEC);
    rawClose(up);
    u.fdState[fd] &= ~FD.LOWER;
  } finally {
    u.L.endRequest();
    u.nodes.unlock();
  }
}

/** A pipe per thread for READ replies spliced from the file (a copy saved), or null. */
let pipe: { read: number; write: number } | null | undefined;
const PIPE_SIZE = 1 << 20;
const SPLICE_MIN = 16384;
const hdr = Buffer.alloc(SIZE.OUT_HEADER);
const offBuf = Buffer.alloc(8);

/**
 * Answers a READ of a lower file by splicing: the reply's header is written into a pipe, the
 * file's pages are spliced in behind it and the whole is spliced into /dev/fuse, so the data
 * is never copied into this process (libfuse's splice reply). The file never changes, so its
 * size, known since open, gives the reply's length up front. False when it cannot; nothing is
 * sent then.
 */
function spliceRead(u: Union, req: Request, fd: number, offset: number, size: number): boolean {
  if (pipe === undefined) {
    const p = rawPipe(PIPE_SIZE);
    pipe = typeof p === 'number' ? null : p;
  }
  const fileSize = u.fdSize[fd];
  if (!pipe || fileSize < 0) return false;
  const n = Math.max(0, Math.min(size, fileSize - offset));
  // The header takes a slot of its own, and unaligned data one page more. Small reads are
  // cheaper copied (two calls rather than three).
  if (n < SPLICE_MIN || n + 4096 + (offset % 4096 ? 4096 : 0) > PIPE_SIZE) return false;
  hdr.writeUInt32LE(SIZE.OUT_HEADER + n, 0);
  hdr.writeInt32LE(0, 4);
  req.buf.copy(hdr, 8, 8, 16);
  if (rawWrite(pipe.write, hdr, SIZE.OUT_HEADER) !== SIZE.OUT_HEADER) return dropPipe();
  writeU64(offBuf, 0, offset);
  if (rawSplice(fd, offBuf, pipe.write, null, n, SPLICE.MOVE) !== n) return dropPipe();
  const w = rawSplice(pipe.read, null, u.conn.devFd, null, SIZE.OUT_HEADER + n, SPLICE.MOVE);
  if (w === SIZE.OUT_HEADER + n) return true;
  dropPipe();
  // ENOENT: the request was interrupted meanwhile, its answer is not wanted.
  return w === -ENOENT;
}

/** Throws away a pipe a failed splice left something in; the next READ makes another. */
function dropPipe(): false {
  if (pipe) {
    rawClose(pipe.read);
    rawClose(pipe.write);
  }
  pipe = undefined;
  return false;
}

/** READ, without the table's lock: the fd is the file handle. */
export const read: Op = (u, req, out) => {
  const fd = req.u64(0);
  const offset = req.u64(8);
  const size = Math.min(req.u32(16), out.room);
  if (fd >= u.fdState.length || !(u.fdState[fd] & FD.OPEN)) return EBADF;
  if (u.fdState[fd] & FD.LOWER && u.nodes.get(req.nodeid, N.TOP) === 0) followCopyUp(u, req.nodeid, fd);
  if (u.fdState[fd] & FD.LOWER && spliceRead(u, req, fd, offset, size)) return NO_REPLY;
  const n = rawPread(fd, out.buf.subarray(out.at(0)), size, offset);
  if (n < 0) return -n;
  out.len = n;
  return 0;
};

export const write: Op = (u, req, out) => {
  const fd = req.u64(0);
  const offset = req.u64(8);
  const size = req.u32(16);
  if (fd >= u.fdState.length || !(u.fdState[fd] & FD.OPEN)) return EBADF;
  const n = rawPwrite(fd, req.bytes(40, size), size, offset);
  if (n < 0) return -n;
  if (req.u32(20) & WRITE_KILL_SUIDGID) killSuidgid(fd, EMPTY_NAME, AT_EMPTY_PATH);
  const p = out.reserve(SIZE.WRITE_OUT);
  out.buf.writeUInt32LE(n, p);
  return 0;
};

export const release: Op = (u, req) => {
  const fd = req.u64(0);
  const i = req.nodeid;
  if (fd >= u.fdState.length || !(u.fdState[fd] & FD.OPEN)) return 0;
  const s = u.fdState[fd];
  if (u.nodes.valid(i)) {
    if (s & FD.PASSTHROUGH) {
      const left = u.nodes.get(i, N.PT_OPENS) - 1;
      u.nodes.set(i, N.PT_OPENS, left);
      const backing = u.nodes.get(i, N.BACKING);
      if (left <= 0 && backing) {
        try {
          fuseBackingClose(u.conn.devFd, backing);
        } catch {
          // already gone with the connection
        }
        u.nodes.set(i, N.BACKING, 0);
      }
    } else if (s & FD.CACHED) u.nodes.set(i, N.CACHED_OPENS, u.nodes.get(i, N.CACHED_OPENS) - 1);
    const tmp = u.tmpFd(i);
    u.nodes.released(i);
    u.closeIfFreed(i, tmp);
  }
  u.fdState[fd] = 0;
  rawClose(fd);
  return 0;
};

/**
 * FLUSH (a close) has nothing to write out: opens say FOPEN_NOFLUSH, so the kernel sends it
 * only with its writeback cache, which it has flushed itself before.
 */
export const flush: Op = () => 0;

export const fsync: Op = (u, req) => {
  const fd = req.u64(0);
  if (fd >= u.fdState.length || !(u.fdState[fd] & FD.OPEN)) return EBADF;
  if (u.volatile) return 0;
  u.conn.yieldReader();
  // Opened by a copy-up still on its way to the disk: its thread holds the lock until the
  // file is linked in, and the file is durable only then.
  if (Atomics.load(u.fdState, fd) & FD.SYNCING) {
    u.nodes.lock();
    u.nodes.unlock();
  }
  const r = rawFsync(fd, (req.u32(8) & FSYNC_FDATASYNC) !== 0);
  return r < 0 ? -r : 0;
};

export const fallocate: Op = (u, req) => {
  const fd = req.u64(0);
  if (fd >= u.fdState.length || !(u.fdState[fd] & FD.OPEN)) return EBADF;
  u.conn.yieldReader();
  const r = rawFallocate(fd, req.u32(24), req.u64(8), req.u64(16));
  return r < 0 ? -r : 0;
};

export const lseek: Op = (u, req, out) => {
  const fd = req.u64(0);
  if (fd >= u.fdState.length || !(u.fdState[fd] & FD.OPEN)) return EBADF;
  const whence = req.u32(16);
  if (whence !== 3 && whence !== 4) return EINVAL; // SEEK_DATA, SEEK_HOLE only
  const r = rawLseek(fd, req.u64(8), whence);
  if (r < 0) return -r;
  out.u64(r);
  return 0;
};

export const copyFileRange: Op = (u, req, out) => {
  const fdIn = req.u64(0);
  const fdOut = req.u64(24);
  for (const fd of [fdIn, fdOut]) if (fd >= u.fdState.length || !(u.fdState[fd] & FD.OPEN)) return EBADF;
  const offIn = Buffer.alloc(8);
  const offOut = Buffer.alloc(8);
  offIn.writeBigUInt64LE(BigInt(req.u64(8)));
  offOut.writeBigUInt64LE(BigInt(req.u64(32)));
  const len = Math.min(req.u64(40), 0x7ffff000);
  u.conn.yieldReader();
  const n = rawCopyFileRange(fdIn, offIn, fdOut, offOut, len);
  if (n < 0) return -n;
  const p = out.reserve(SIZE.WRITE_OUT);
  out.buf.writeUInt32LE(n, p);
  return 0;
};

export type { Request };
