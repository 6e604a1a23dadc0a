// File system calls for servers that answer on behalf of others (the FUSE union): names are
// raw bytes (NUL-terminated Buffers, as a Linux name need not be UTF-8), everything is
// relative to a directory fd, and failures come back as -errno rather than as exceptions,
// since a server turns most of them into an answer and a lookup that misses is no error.
import { arch } from 'node:process';
import { SyscallError } from './errors.js';
import { errno, koffi, lazy, libc } from './libc.js';

/** Syscall numbers that glibc does not wrap (or wraps only recently). */
const NR: Record<string, Record<string, number>> = {
  x64: { getdents64: 217, openat2: 437, fchmodat2: 452 },
  arm64: { getdents64: 61, openat2: 437, fchmodat2: 452 },
};
const nr = NR[arch] ?? NR.x64;

const f = lazy(() => ({
  openat: libc.func('int openat(int dirfd, void *path, int flags, uint32_t mode)'),
  openat2: libc.func('long syscall(long nr, int dirfd, void *path, void *how, size_t size)'),
  statx: libc.func('int statx(int dirfd, void *path, int flags, uint32_t mask, void *out)'),
  getdents64: libc.func('long syscall(long nr, int fd, void *buf, size_t size)'),
  mkdirat: libc.func('int mkdirat(int dirfd, void *path, uint32_t mode)'),
  mknodat: libc.func('int mknodat(int dirfd, void *path, uint32_t mode, uint64_t dev)'),
  symlinkat: libc.func('int symlinkat(void *target, int dirfd, void *path)'),
  readlinkat: libc.func('intptr_t readlinkat(int dirfd, void *path, void *buf, size_t size)'),
  unlinkat: libc.func('int unlinkat(int dirfd, void *path, int flags)'),
  renameat2: libc.func(
    'int renameat2(int olddirfd, void *oldpath, int newdirfd, void *newpath, unsigned int flags)',
  ),
  linkat: libc.func('int linkat(int olddirfd, void *oldpath, int newdirfd, void *newpath, int flags)'),
  fchownat: libc.func('int fchownat(int dirfd, void *path, uint32_t uid, uint32_t gid, int flags)'),
  utimensat: libc.func('int utimensat(int dirfd, void *path, void *times, int flags)'),
  fchmodat2: libc.func('long syscall(long nr, int dirfd, void *path, uint32_t mode, int flags)'),
  lgetxattr: libc.func('intptr_t lgetxattr(void *path, void *name, void *value, size_t size)'),
  lsetxattr: libc.func('int lsetxattr(void *path, void *name, void *value, size_t size, int flags)'),
  llistxattr: libc.func('intptr_t llistxattr(void *path, void *list, size_t size)'),
  lremovexattr: libc.func('int lremovexattr(void *path, void *name)'),
  fgetxattr: libc.func('intptr_t fgetxattr(int fd, void *name, void *value, size_t size)'),
  fsetxattr: libc.func('int fsetxattr(int fd, void *name, void *value, size_t size, int flags)'),
  flistxattr: libc.func('intptr_t flistxattr(int fd, void *list, size_t size)'),
  fremovexattr: libc.func('int fremovexattr(int fd, void *name)'),
  copyFileRange: libc.func(
    'intptr_t copy_file_range(int fdin, void *offin, int fdout, void *offout, size_t len, unsigned int flags)',
  ),
  fallocate: libc.func('int fallocate(int fd, int mode, int64_t offset, int64_t len)'),
  lseek: libc.func('int64_t lseek(int fd, int64_t offset, int whence)'),
  fsync: libc.func('int fsync(int fd)'),
  fadvise: libc.func('int posix_fadvise(int fd, int64_t offset, int64_t len, int advice)'),
  syncFileRange: libc.func('int sync_file_range(int fd, int64_t offset, int64_t nbytes, unsigned int flags)'),
  fdatasync: libc.func('int fdatasync(int fd)'),
  ftruncate: libc.func('int ftruncate(int fd, int64_t len)'),
  fchmod: libc.func('int fchmod(int fd, uint32_t mode)'),
  fchown: libc.func('int fchown(int fd, uint32_t uid, uint32_t gid)'),
  close: libc.func('int close(int fd)'),
  dup3: libc.func('int dup3(int oldfd, int newfd, int flags)'),
  read: libc.func('intptr_t read(int fd, void *buf, size_t count)'),
  write: libc.func('intptr_t write(int fd, void *buf, size_t count)'),
  pread: libc.func('intptr_t pread(int fd, void *buf, size_t count, int64_t offset)'),
  pwrite: libc.func('intptr_t pwrite(int fd, void *buf, size_t count, int64_t offset)'),
  fstatfs: libc.func('int fstatfs(int fd, void *buf)'),
  memfdCreate: libc.func('int memfd_create(const char *name, unsigned int flags)'),
  poll: libc.func('int poll(void *fds, unsigned long nfds, int timeout)'),
  splice: libc.func(
    'intptr_t splice(int fdin, void *offin, int fdout, void *offout, size_t len, unsigned int flags)',
  ),
  pipe2: libc.func('int pipe2(_Out_ int *fds, int flags)'),
  fcntl: libc.func('int fcntl(int fd, int cmd, int arg)'),
  mmap: libc.func('void *mmap(void *addr, size_t len, int prot, int flags, int fd, int64_t off)'),
  munmap: libc.func('int munmap(void *addr, size_t len)'),
  msync: libc.func('int msync(void *addr, size_t len, int flags)'),
}));

/** A libc result: the value itself, or -errno when the call failed (returned -1). */
const res = (r: number | bigint): number => {
  const n = Number(r);
  return n === -1 ? -errno() : n;
};

/** A NUL-terminated copy of `name` (a string is taken as UTF-8), for the calls below. */
export function cstr(name: string | Buffer): Buffer {
  const b = typeof name === 'string' ? Buffer.from(name) : name;
  const out = Buffer.allocUnsafe(b.length + 1);
  b.copy(out);
  out[b.length] = 0;
  return out;
}

/** The empty path, for calls on the fd itself (AT_EMPTY_PATH). */
export const EMPTY = Buffer.from([0]);

/** STATX_BASIC_STATS | STATX_BTIME is not needed: the fields fuse_attr carries. */
const STATX_BASIC = 0x7ff;

/**
 * statx(2) into `out` (256 bytes, layout of struct statx, the same on every architecture).
 * Read it with the STX offsets. 0 or -errno.
 */
export function rawStatx(dirfd: number, path: Buffer, flags: number, out: Buffer): number {
  return res(f.statx(dirfd, path, flags, STATX_BASIC, out));
}

/** Byte offsets of the fields of struct statx. */
export const STX = {
  blksize: 4,
  nlink: 16,
  uid: 20,
  gid: 24,
  mode: 28, // u16
  ino: 32, // u64
  size: 40,
  blocks: 48,
  atime: 64, // i64 sec, u32 nsec at +8
  ctime: 96,
  mtime: 112,
  rdevMajor: 128,
  rdevMinor: 132,
  devMajor: 136,
  devMinor: 140,
} as const;

/** openat2(2) with struct open_how {flags, mode, resolve}; fd or -errno. */
export function rawOpenat2(
  dirfd: number,
  path: Buffer,
  flags: number,
  mode: number,
  resolve: number,
  how = Buffer.alloc(24),
): number {
  how.writeBigUInt64LE(BigInt(flags >>> 0), 0);
  how.writeBigUInt64LE(BigInt(mode), 8);
  how.writeBigUInt64LE(BigInt(resolve), 16);
  return res(f.openat2(nr.openat2, dirfd, path, how, 24));
}

export const rawOpenat = (dirfd: number, path: Buffer, flags: number, mode = 0): number =>
  res(f.openat(dirfd, path, flags, mode));
/** getdents64(2): linux_dirent64 records {u64 ino, i64 off, u16 reclen, u8 type, name}. */
export const rawGetdents = (fd: number, buf: Buffer): number =>
  res(f.getdents64(nr.getdents64, fd, buf, buf.length));
export const rawMkdirat = (dirfd: number, path: Buffer, mode: number): number =>
  res(f.mkdirat(dirfd, path, mode));
export const rawMknodat = (dirfd: number, path: Buffer, mode: number, dev: number): number =>
  res(f.mknodat(dirfd, path, mode, dev));
export const rawSymlinkat = (target: Buffer, dirfd: number, path: Buffer): number =>
  res(f.symlinkat(target, dirfd, path));
export const rawReadlinkat = (dirfd: number, path: Buffer, buf: Buffer): number =>
  res(f.readlinkat(dirfd, path, buf, buf.length));
export const rawUnlinkat = (dirfd: number, path: Buffer, flags: number): number =>
  res(f.unlinkat(dirfd, path, flags));
export const rawRenameat2 = (
  olddir: number,
  oldpath: Buffer,
  newdir: number,
  newpath: Buffer,
  flags: number,
): number => res(f.renameat2(olddir, oldpath, newdir, newpath, flags));
export const rawLinkat = (
  olddir: number,
  oldpath: Buffer,
  newdir: number,
  newpath: Buffer,
  flags: number,
): number => res(f.linkat(olddir, oldpath, newdir, newpath, flags));
export const rawFchownat = (dirfd: number, path: Buffer, uid: number, gid: number, flags: number): number =>
  res(f.fchownat(dirfd, path, uid >>> 0, gid >>> 0, flags));
/** utimensat(2); `times` holds two struct timespec (atime, mtime), or null for now. */
export const rawUtimensat = (dirfd: number, path: Buffer, times: Buffer | null, flags: number): number =>
  res(f.utimensat(dirfd, path, times, flags));
/** fchmodat2(2) (6.6+): with AT_SYMLINK_NOFOLLOW it never follows a symlink. */
export const rawFchmodat2 = (dirfd: number, path: Buffer, mode: number, flags: number): number =>
  res(f.fchmodat2(nr.fchmodat2, dirfd, path, mode, flags));
export const rawLgetxattr = (path: Buffer, name: Buffer, buf: Buffer | null): number =>
  res(f.lgetxattr(path, name, buf, buf ? buf.length : 0));
export const rawLsetxattr = (path: Buffer, name: Buffer, value: Buffer, flags: number): number =>
  res(f.lsetxattr(path, name, value, value.length, flags));
export const rawLlistxattr = (path: Buffer, buf: Buffer | null): number =>
  res(f.llistxattr(path, buf, buf ? buf.length : 0));
export const rawLremovexattr = (path: Buffer, name: Buffer): number => res(f.lremovexattr(path, name));
export const rawFgetxattr = (fd: number, name: Buffer, buf: Buffer | null): number =>
  res(f.fgetxattr(fd, name, buf, buf ? buf.length : 0));
export const rawFsetxattr = (fd: number, name: Buffer, value: Buffer, flags: number): number =>
  res(f.fsetxattr(fd, name, value, value.length, flags));
export const rawFlistxattr = (fd: number, buf: Buffer | null): number =>
  res(f.flistxattr(fd, buf, buf ? buf.length : 0));
export const rawFremovexattr = (fd: number, name: Buffer): number => res(f.fremovexattr(fd, name));
/** copy_file_range(2) at explicit offsets (8-byte little-endian buffers, advanced by the call). */
export const rawCopyFileRange = (
  fdIn: number,
  offIn: Buffer,
  fdOut: number,
  offOut: Buffer,
  len: number,
): number => res(f.copyFileRange(fdIn, offIn, fdOut, offOut, len, 0));
export const rawFallocate = (fd: number, mode: number, offset: number, len: number): number =>
  res(f.fallocate(fd, mode, offset, len));
export const rawLseek = (fd: number, offset: number, whence: number): number =>
  res(f.lseek(fd, offset, whence));
/** posix_fadvise(2) (it returns the error number itself): 0 or -errno. FADV.DONTNEED drops clean pages. */
export const rawFadvise = (fd: number, offset: number, len: number, advice: number): number => {
  const e = f.fadvise(fd, offset, len, advice) as number;
  return e ? -e : 0;
};
export const FADV = { DONTNEED: 4 } as const;
export const rawFsync = (fd: number, dataOnly = false): number =>
  res(dataOnly ? f.fdatasync(fd) : f.fsync(fd));
/** sync_file_range(2) with SYNC_FILE_RANGE_WRITE: starts writing a range out, without waiting. */
export const rawStartWriteback = (fd: number, offset: number, len: number): number =>
  res(f.syncFileRange(fd, offset, len, 2));
export const rawFtruncate = (fd: number, len: number): number => res(f.ftruncate(fd, len));
export const rawFchmod = (fd: number, mode: number): number => res(f.fchmod(fd, mode));
export const rawFchown = (fd: number, uid: number, gid: number): number =>
  res(f.fchown(fd, uid >>> 0, gid >>> 0));
export const rawClose = (fd: number): number => res(f.close(fd));
export const rawDup3 = (oldfd: number, newfd: number, flags: number): number =>
  res(f.dup3(oldfd, newfd, flags));
export const rawRead = (fd: number, buf: Buffer, len = buf.length): number => res(f.read(fd, buf, len));
export const rawWrite = (fd: number, buf: Buffer, len = buf.length): number => res(f.write(fd, buf, len));
export const rawPread = (fd: number, buf: Buffer, len: number, offset: number): number =>
  res(f.pread(fd, buf, len, offset));
export const rawPwrite = (fd: number, buf: Buffer, len: number, offset: number): number =>
  res(f.pwrite(fd, buf, len, offset));
/** fstatfs(2) into `out` (120 bytes of struct statfs, 64-bit layout). */
export const rawFstatfs = (fd: number, out: Buffer): number => res(f.fstatfs(fd, out));
export const rawMemfd = (name: string, flags: number): number => res(f.memfdCreate(name, flags));

const pollBuf = Buffer.alloc(8);
/** True when `fd` has something to read right now (poll with no timeout). */
export function rawReadable(fd: number): boolean {
  pollBuf.writeInt32LE(fd, 0);
  pollBuf.writeInt16LE(1, 4); // POLLIN
  pollBuf.writeInt16LE(0, 6);
  return Number(f.poll(pollBuf, 1, 0)) > 0 && (pollBuf.readInt16LE(6) & 1) !== 0;
}

/** splice(2): moves `len` bytes between an fd and a pipe; `off` (8 bytes, advanced) or null. */
export const rawSplice = (
  fdIn: number,
  offIn: Buffer | null,
  fdOut: number,
  offOut: Buffer | null,
  len: number,
  flags: number,
): number => res(f.splice(fdIn, offIn, fdOut, offOut, len, flags));
export const SPLICE = { MOVE: 1, NONBLOCK: 2, MORE: 4 } as const;

/** A pipe (close-on-exec) of `size` bytes (F_SETPIPE_SZ; at most /proc/sys/fs/pipe-max-size). */
export function rawPipe(size: number): { read: number; write: number } | number {
  const fds = [0, 0];
  const r = res(f.pipe2(fds, 0o2000000));
  if (r < 0) return r;
  const s = res(f.fcntl(fds[1], 1031, size));
  if (s < 0) {
    f.close(fds[0]);
    f.close(fds[1]);
    return s;
  }
  return { read: fds[0], write: fds[1] };
}

/** mmap(2) protections and flags. */
export const PROT = { READ: 1, WRITE: 2 } as const;
export const MAP = { SHARED: 1, PRIVATE: 2 } as const;

/** A file mapped into memory: `bytes` is a view of the mapping. */
export interface Mapping {
  readonly bytes: Buffer;
  /** msync(MS_SYNC): writes the mapping's changes to the file. */
  sync(): void;
  unmap(): void;
}

/** Maps `length` bytes of `fd` from `offset` (mmap(2)). */
export function mapFile(fd: number, length: number, prot: number, flags: number, offset = 0): Mapping {
  const ptr = f.mmap(null, length, prot, flags, fd, offset);
  if (koffi.address(ptr) === 0xffffffffffffffffn) throw new SyscallError('mmap', errno(), [fd, length]);
  const bytes = Buffer.from(koffi.view(ptr, length));
  let mapped = true;
  return {
    bytes,
    sync() {
      if (f.msync(ptr, length, 4) < 0) throw new SyscallError('msync', errno(), [fd]);
    },
    unmap() {
      if (!mapped) return;
      mapped = false;
      if (f.munmap(ptr, length) < 0) throw new SyscallError('munmap', errno(), [fd]);
    },
  };
}
