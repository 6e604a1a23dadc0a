// Changing the upper layer the way overlayfs does: copy-up (an entry of a lower layer made
// whole in upper, with owner, mode, times and xattrs, through the work folder so it appears
// at once), whiteouts (character devices 0/0), and entries made over a whiteout (a folder made
// there is opaque).
import { threadId } from 'node:worker_threads';
import {
  cstr,
  rawCopyFileRange,
  rawFchmod,
  rawFchmodat2,
  rawFchown,
  rawFchownat,
  rawFgetxattr,
  rawFlistxattr,
  rawFsetxattr,
  rawFsync,
  rawLgetxattr,
  rawLinkat,
  rawLlistxattr,
  rawLsetxattr,
  rawMkdirat,
  rawMknodat,
  rawOpenat,
  rawPread,
  rawPwrite,
  rawReadlinkat,
  rawRenameat2,
  rawStartWriteback,
  rawSymlinkat,
  rawUnlinkat,
  rawUtimensat,
  STX,
} from '@corral/sys';
import {
  AT_EMPTY_PATH,
  AT_REMOVEDIR,
  AT_SYMLINK_NOFOLLOW,
  EMPTY_NAME,
  EROFS,
  O_CLOEXEC,
  O_DIRECTORY,
  O_RDONLY,
  O_RDWR,
  O_TMPFILE,
  OPAQUE_XATTR,
  readEntries,
  S_IFDIR,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
} from './layers.js';
import { N, NF } from './nodes.js';
import type { Union } from './union.js';

export const RENAME_NOREPLACE = 1;
export const RENAME_EXCHANGE = 2;
export const RENAME_WHITEOUT = 4;
const EXDEV = 18;
const EINVAL = 22;
const ENOSYS = 38;
const EOPNOTSUPP = 95;
const ENODATA = 61;
const EPERM = 1;
const COPY_CHUNK = 16 << 20;

let tmpCount = 0;
/** A fresh name in the work folder (overlayfs names its temporaries "#<hex>" too). */
export const tmpName = (): Buffer => cstr(`#corral.${process.pid}.${threadId}.${(++tmpCount).toString(16)}`);

const DOT = cstr('.');
const CAPABILITY = cstr('security.capability');
const Y = Buffer.from('y');

/** struct timespec[2] (atime, mtime) from a statx buffer. */
export function timesOf(stx: Buffer, out = Buffer.alloc(32)): Buffer {
  out.writeBigInt64LE(stx.readBigInt64LE(STX.atime), 0);
  out.writeBigInt64LE(BigInt(stx.readUInt32LE(STX.atime + 8)), 8);
  out.writeBigInt64LE(stx.readBigInt64LE(STX.mtime), 16);
  out.writeBigInt64LE(BigInt(stx.readUInt32LE(STX.mtime + 8)), 24);
  return out;
}

/** The 64-bit dev_t glibc encodes from a major and minor number. */
export function makedev(major: number, minor: number): number {
  return Number(
    ((BigInt(major) & 0xfffff000n) << 32n) |
      ((BigInt(major) & 0xfffn) << 8n) |
      ((BigInt(minor) & 0xffffff00n) << 12n) |
      (BigInt(minor) & 0xffn),
  );
}

/** The path /proc/self/fd/FD[/NAME] (NUL-terminated), reaching NAME in FD without following it. */
export function procPath(fd: number, name: Buffer | null): Buffer {
  const head = `/proc/self/fd/${fd}${name ? '/' : ''}`;
  const bare = name && name[name.length - 1] === 0 ? name.subarray(0, name.length - 1) : name;
  return Buffer.concat([Buffer.from(head), bare ?? Buffer.alloc(0), Buffer.from([0])]);
}

const isPrivate = (name: Buffer) => name.toString('latin1').startsWith('trusted.overlay.');

/** The xattr names in a list as listxattr returns it, each NUL-terminated. */
function names(list: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let start = 0;
  for (let i = 0; i < list.length; i++) {
    if (list[i] === 0) {
      if (i > start) out.push(list.subarray(start, i + 1));
      start = i + 1;
    }
  }
  return out;
}

interface XattrIo {
  list(buf: Buffer | null): number;
  get(name: Buffer, buf: Buffer | null): number;
}

/** Copies every xattr but overlayfs's own from `src` to `set`. */
function copyXattrs(src: XattrIo, set: (name: Buffer, value: Buffer) => number): number {
  const size = src.list(null);
  if (size <= 0) return size === -EOPNOTSUPP || size === -ENODATA ? 0 : size;
  const list = Buffer.alloc(size);
  const n = src.list(list);
  if (n < 0) return n;
  for (const name of names(list.subarray(0, n))) {
    if (isPrivate(name.subarray(0, name.length - 1))) continue;
    const vs = src.get(name, null);
    if (vs < 0) {
      if (vs === -ENODATA) continue;
      return vs;
    }
    const value = Buffer.alloc(vs);
    const got = src.get(name, value);
    if (got < 0) return got;
    const r = set(name, value.subarray(0, got));
    // An xattr the upper filesystem cannot hold (a foreign security module's) is left out,
    // as overlayfs does.
    if (r < 0 && r !== -EOPNOTSUPP && r !== -EPERM) return r;
  }
  return 0;
}

const fdXattrs = (fd: number): XattrIo => ({
  list: (buf) => rawFlistxattr(fd, buf),
  get: (name, buf) => rawFgetxattr(fd, name, buf),
});

const pathXattrs = (path: Buffer): XattrIo => ({
  list: (buf) => rawLlistxattr(path, buf),
  get: (name, buf) => rawLgetxattr(path, name, buf),
});

/** Copies `len` bytes from `src` to `dst` from offset 0 (copy_file_range, else read/write). */
function copyData(src: number, dst: number, len: number, writeback: boolean): number {
  const offIn = Buffer.alloc(8);
  const offOut = Buffer.alloc(8);
  let done = 0;
  while (done < len) {
    const n = rawCopyFileRange(src, offIn, dst, offOut, Math.min(COPY_CHUNK, len - done));
    if (n === 0) break;
    if (n < 0) {
      if (n === -EXDEV || n === -EINVAL || n === -ENOSYS || n === -EOPNOTSUPP)
        return copyPlain(src, dst, done, len);
      return n;
    }
    // The disk starts on each piece while the next is copied: the fsync before the link
    // then waits for little.
    if (writeback) rawStartWriteback(dst, done, n);
    done += n;
  }
  return 0;
}

function copyPlain(src: number, dst: number, from: number, len: number): number {
  const buf = Buffer.allocUnsafe(1 << 20);
  for (let off = from; off < len; ) {
    const n = rawPread(src, buf, buf.length, off);
    if (n < 0) return n;
    if (n === 0) break;
    for (let w = 0; w < n; ) {
      const m = rawPwrite(dst, buf.subarray(w), n - w, off + w);
      if (m < 0) return m;
      w += m;
    }
    off += n;
  }
  return 0;
}

/**
 * Answers the request that asked for a copy-up once the copy is made but before it is on disk
 * and linked in: gets the copy's fd (a nameless file in the work folder), returns 0 once it
 * has answered, or -errno (nothing sent). See ops-file.ts open.
 */
export type EarlyAnswer = (copy: number) => number;

/**
 * Copies node `i` (and, first, its parent folders) up into the upper layer. With `data`
 * false a regular file's contents are left behind (it is about to be truncated). With
 * `early`, a regular file's copy is handed to it before the wait for the disk.
 */
export function copyUp(u: Union, i: number, data = true, early?: EarlyAnswer): number {
  const { nodes, L } = u;
  if (u.U < 0) return -EROFS;
  const top = nodes.get(i, N.TOP);
  if (top === 0) return 0;
  const parent = nodes.get(i, N.PARENT);
  let r = copyUp(u, parent, true);
  if (r < 0) return r;
  const lowerDir = L.openDir(top, parent);
  if (lowerDir < 0) return lowerDir;
  const upperDir = L.openDir(0, parent);
  if (upperDir < 0) {
    L.close(lowerDir);
    return upperDir;
  }
  try {
    const name = Buffer.from(u.nameOf(i));
    r = L.stat(lowerDir, name);
    if (r < 0) return r;
    const st = Buffer.from(L.stx);
    r = L.fstat(upperDir);
    if (r < 0) return r;
    const parentTimes = timesOf(L.stx);
    const type = st.readUInt16LE(STX.mode) & S_IFMT;
    // The early answer sees the node in upper already (nothing else runs until the lock is
    // let go, after the link); put back if the copy-up fails after all.
    const answer =
      early &&
      ((copy: number) => {
        nodes.set(i, N.TOP, 0);
        // A copy with no file capabilities says so without the lock (ops-entry.ts).
        if (rawFgetxattr(copy, CAPABILITY, null) === -ENODATA)
          nodes.set(i, N.FLAGS, nodes.flags(i) | NF.CLEAN);
        const e = early(copy);
        if (e < 0) nodes.set(i, N.TOP, top);
        return e;
      });
    if (type === S_IFREG) r = copyFile(u, lowerDir, upperDir, name, st, data, answer);
    else r = copyOther(u, lowerDir, upperDir, name, st, type);
    if (r < 0) {
      nodes.set(i, N.TOP, top);
      return r;
    }
    // Making the entry changed the folder's times; overlayfs puts them back.
    rawUtimensat(upperDir, EMPTY_NAME, parentTimes, AT_EMPTY_PATH);
    nodes.set(i, N.TOP, 0);
    if (L.stat(upperDir, name) === 0) {
      // The copy keeps the number it had below for the life of the mount, as overlayfs's
      // origin xattr keeps it; not a file with several links below, whose links the copy-up
      // broke (overlayfs then shows the copy's own number).
      const uino = L.ino(0);
      if (type === S_IFDIR || st.readUInt32LE(STX.nlink) === 1) u.origins.set(uino, nodes.ino(i));
      else nodes.setIno(i, uino);
    }
    return 0;
  } finally {
    L.close(lowerDir);
    L.close(upperDir);
  }
}

/** Sets owner, then mode (chown clears set-user-ID), then times, on an open fd. */
function setAttrsFd(fd: number, st: Buffer): number {
  let r = rawFchown(fd, st.readUInt32LE(STX.uid), st.readUInt32LE(STX.gid));
  if (r < 0) return r;
  r = rawFchmod(fd, st.readUInt16LE(STX.mode) & 0o7777);
  if (r < 0) return r;
  return rawUtimensat(fd, EMPTY_NAME, timesOf(st), AT_EMPTY_PATH);
}

function copyFile(
  u: Union,
  lowerDir: number,
  upperDir: number,
  name: Buffer,
  st: Buffer,
  data: boolean,
  early?: EarlyAnswer,
): number {
  const L = u.L;
  const src = L.openAt(lowerDir, name, O_RDONLY);
  if (src < 0) return src;
  const dst = rawOpenat(L.workFd, DOT, O_TMPFILE | O_RDWR | O_CLOEXEC, 0o600);
  if (dst < 0) {
    L.close(src);
    return dst;
  }
  try {
    const size = Number(st.readBigUInt64LE(STX.size));
    // Long work: another thread reads the requests meanwhile (those that need the lock wait
    // for it; reads and writes of open files, and the first write's capability check, do not).
    if (data && size > 0) u.conn.yieldReader();
    // Writeback started as the copy goes shortens the fsync after it, but makes the copy wait
    // for the disk once its queue is full: not when the caller is answered before the fsync.
    let r = data ? copyData(src, dst, size, !u.volatile && !early) : 0;
    if (r < 0) return r;
    r = copyXattrs(fdXattrs(src), (n, v) => rawFsetxattr(dst, n, v, 0));
    if (r < 0) return r;
    r = setAttrsFd(dst, st);
    if (r < 0) return r;
    // The data is on disk before the file appears in upper, as overlayfs makes sure. The
    // caller may be answered before that wait (it then uses the copy by its fd).
    if (data && size > 0 && !u.volatile) {
      if (early) {
        r = early(dst);
        if (r < 0) return r;
      }
      r = rawFsync(dst);
      if (r < 0) {
        if (!early) return r;
        // Already answered: the file is linked in all the same, or its writes would be lost.
        process.stderr.write(`corral fuse: fsync of a copy-up: errno ${-r}\n`);
      }
    }
    return rawLinkat(dst, EMPTY_NAME, upperDir, name, AT_EMPTY_PATH);
  } finally {
    L.close(src);
    L.close(dst);
  }
}

/** Folders, symlinks and special files: made in the work folder, then renamed into upper. */
function copyOther(
  u: Union,
  lowerDir: number,
  upperDir: number,
  name: Buffer,
  st: Buffer,
  type: number,
): number {
  const L = u.L;
  const work = L.workFd;
  const tmp = tmpName();
  const mode = st.readUInt16LE(STX.mode);
  let r: number;
  if (type === S_IFDIR) r = rawMkdirat(work, tmp, mode & 0o7777);
  else if (type === S_IFLNK) {
    const target = Buffer.alloc(4097);
    const n = rawReadlinkat(lowerDir, name, target);
    if (n < 0) return n;
    target[n] = 0;
    r = rawSymlinkat(target.subarray(0, n + 1), work, tmp);
  } else {
    r = rawMknodat(work, tmp, mode, makedev(st.readUInt32LE(STX.rdevMajor), st.readUInt32LE(STX.rdevMinor)));
  }
  if (r < 0) return r;
  r = finishOther(u, lowerDir, name, st, type, tmp);
  if (r >= 0) r = rawRenameat2(work, tmp, upperDir, name, RENAME_NOREPLACE);
  if (r < 0) rawUnlinkat(work, tmp, type === S_IFDIR ? AT_REMOVEDIR : 0);
  return r;
}

function finishOther(
  u: Union,
  lowerDir: number,
  name: Buffer,
  st: Buffer,
  type: number,
  tmp: Buffer,
): number {
  const work = u.L.workFd;
  const srcPath = procPath(lowerDir, name);
  const dstPath = procPath(work, tmp);
  let r = copyXattrs(pathXattrs(srcPath), (n, v) => rawLsetxattr(dstPath, n, v, 0));
  if (r < 0) return r;
  r = rawFchownat(work, tmp, st.readUInt32LE(STX.uid), st.readUInt32LE(STX.gid), AT_SYMLINK_NOFOLLOW);
  if (r < 0) return r;
  if (type !== S_IFLNK) {
    r = rawFchmodat2(work, tmp, st.readUInt16LE(STX.mode) & 0o7777, AT_SYMLINK_NOFOLLOW);
    if (r < 0) return r;
  }
  return rawUtimensat(work, tmp, timesOf(st), AT_SYMLINK_NOFOLLOW);
}

/** Puts a whiteout at `name` in the upper folder `upperDir` (where nothing is). */
export function makeWhiteout(upperDir: number, name: Buffer): number {
  return rawMknodat(upperDir, name, 0o020000, 0);
}

/**
 * Replaces `name` in `upperDir` with a whiteout in one step (RENAME_WHITEOUT into the work
 * folder), then removes what was moved out; a folder may hold whiteouts only.
 */
export function replaceWithWhiteout(u: Union, upperDir: number, name: Buffer, isDir: boolean): number {
  const tmp = tmpName();
  const r = rawRenameat2(upperDir, name, u.L.workFd, tmp, RENAME_WHITEOUT);
  if (r < 0) return r;
  return isDir ? removeTree(u, u.L.workFd, tmp) : rawUnlinkat(u.L.workFd, tmp, 0);
}

/** Removes `name` in `dirfd`, a folder whose entries are whiteouts (or empty folders). */
export function removeTree(u: Union, dirfd: number, name: Buffer): number {
  const fd = u.L.openAt(dirfd, name, O_RDONLY | O_DIRECTORY);
  if (fd < 0) return fd;
  const inner: Buffer[] = [];
  const r = readEntries(fd, (n) => inner.push(cstr(n)));
  for (const n of inner) {
    if (rawUnlinkat(fd, n, 0) < 0) removeTree(u, fd, n);
  }
  u.L.close(fd);
  if (r < 0) return r;
  return rawUnlinkat(dirfd, name, AT_REMOVEDIR);
}

const ACL_DEFAULT = cstr('system.posix_acl_default');

/** The default ACL of the folder `dirfd` (system.posix_acl_default), or null. */
function defaultAcl(dirfd: number): Buffer | null {
  const path = procPath(dirfd, DOT);
  const size = rawLgetxattr(path, ACL_DEFAULT, null);
  if (size <= 0) return null;
  const value = Buffer.alloc(size);
  const n = rawLgetxattr(path, ACL_DEFAULT, value);
  return n > 0 ? value.subarray(0, n) : null;
}

/**
 * Makes an entry at `name` in `upperDir` where a whiteout is: `make` creates it in the work
 * folder under a temporary name; a folder is marked opaque (the lowers' folder stays hidden)
 * and swapped with the whiteout, anything else replaces it. Where `upperDir` has a default
 * ACL, the entry is made in a folder of the work folder's that has the same one, so that the
 * upper filesystem gives it the ACL it would have got in place (overlayfs computes it).
 */
export function createOverWhiteout(
  u: Union,
  upperDir: number,
  name: Buffer,
  isDir: boolean,
  make: (dirfd: number, tmp: Buffer) => number,
): number {
  const acl = defaultAcl(upperDir);
  if (!acl) return overWhiteout(u.L.workFd, upperDir, name, isDir, make);
  const work = u.L.workFd;
  const stageName = tmpName();
  let r = rawMkdirat(work, stageName, 0o700);
  if (r < 0) return r;
  const stage = u.L.openAt(work, stageName, O_RDONLY | O_DIRECTORY);
  try {
    if (stage < 0) return stage;
    r = rawFsetxattr(stage, ACL_DEFAULT, acl, 0);
    if (r < 0) return r;
    return overWhiteout(stage, upperDir, name, isDir, make);
  } finally {
    if (stage >= 0) u.L.close(stage);
    rawUnlinkat(work, stageName, AT_REMOVEDIR);
  }
}

function overWhiteout(
  stage: number,
  upperDir: number,
  name: Buffer,
  isDir: boolean,
  make: (dirfd: number, tmp: Buffer) => number,
): number {
  const tmp = tmpName();
  let r = make(stage, tmp);
  if (r < 0) return r;
  if (isDir) {
    r = rawLsetxattr(procPath(stage, tmp), OPAQUE_XATTR, Y, 0);
    if (r >= 0) r = rawRenameat2(stage, tmp, upperDir, name, RENAME_EXCHANGE);
    if (r >= 0) return rawUnlinkat(stage, tmp, 0);
    rawUnlinkat(stage, tmp, AT_REMOVEDIR);
    return r;
  }
  r = rawRenameat2(stage, tmp, upperDir, name, 0);
  if (r < 0) rawUnlinkat(stage, tmp, 0);
  return r;
}

/** Marks the upper folder `name` in `upperDir` opaque. */
export function setOpaque(upperDir: number, name: Buffer): number {
  return rawLsetxattr(procPath(upperDir, name), OPAQUE_XATTR, Y, 0);
}

export { S_IFDIR };
