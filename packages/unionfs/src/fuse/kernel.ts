// The FUSE kernel ABI (include/uapi/linux/fuse.h, protocol 7.40+): opcodes, flags and the
// sizes of the structs this server reads and writes. Nothing here knows of any filesystem.

export const FUSE_KERNEL_VERSION = 7;
/** The minor version this server speaks; the kernel and the server use the smaller one. */
export const FUSE_KERNEL_MINOR_VERSION = 41;
export const FUSE_ROOT_ID = 1;

export const OP = {
  LOOKUP: 1,
  FORGET: 2,
  GETATTR: 3,
  SETATTR: 4,
  READLINK: 5,
  SYMLINK: 6,
  MKNOD: 8,
  MKDIR: 9,
  UNLINK: 10,
  RMDIR: 11,
  RENAME: 12,
  LINK: 13,
  OPEN: 14,
  READ: 15,
  WRITE: 16,
  STATFS: 17,
  RELEASE: 18,
  FSYNC: 20,
  SETXATTR: 21,
  GETXATTR: 22,
  LISTXATTR: 23,
  REMOVEXATTR: 24,
  FLUSH: 25,
  INIT: 26,
  OPENDIR: 27,
  READDIR: 28,
  RELEASEDIR: 29,
  FSYNCDIR: 30,
  GETLK: 31,
  SETLK: 32,
  SETLKW: 33,
  ACCESS: 34,
  CREATE: 35,
  INTERRUPT: 36,
  BMAP: 37,
  DESTROY: 38,
  IOCTL: 39,
  POLL: 40,
  NOTIFY_REPLY: 41,
  BATCH_FORGET: 42,
  FALLOCATE: 43,
  READDIRPLUS: 44,
  RENAME2: 45,
  LSEEK: 46,
  COPY_FILE_RANGE: 47,
  SETUPMAPPING: 48,
  REMOVEMAPPING: 49,
  SYNCFS: 50,
  TMPFILE: 51,
  STATX: 52,
  COPY_FILE_RANGE_64: 53,
} as const;

/** Opcode names, for logs and errors. */
export const OP_NAME: Record<number, string> = Object.fromEntries(Object.entries(OP).map(([k, v]) => [v, k]));

/** INIT flags (fuse_init_in/out.flags; bits 32+ travel in flags2 with INIT_EXT). */
export const INIT = {
  ASYNC_READ: 2 ** 0,
  POSIX_LOCKS: 2 ** 1,
  ATOMIC_O_TRUNC: 2 ** 3,
  EXPORT_SUPPORT: 2 ** 4,
  BIG_WRITES: 2 ** 5,
  DONT_MASK: 2 ** 6,
  SPLICE_WRITE: 2 ** 7,
  SPLICE_MOVE: 2 ** 8,
  SPLICE_READ: 2 ** 9,
  FLOCK_LOCKS: 2 ** 10,
  HAS_IOCTL_DIR: 2 ** 11,
  AUTO_INVAL_DATA: 2 ** 12,
  DO_READDIRPLUS: 2 ** 13,
  READDIRPLUS_AUTO: 2 ** 14,
  ASYNC_DIO: 2 ** 15,
  WRITEBACK_CACHE: 2 ** 16,
  NO_OPEN_SUPPORT: 2 ** 17,
  PARALLEL_DIROPS: 2 ** 18,
  HANDLE_KILLPRIV: 2 ** 19,
  POSIX_ACL: 2 ** 20,
  ABORT_ERROR: 2 ** 21,
  MAX_PAGES: 2 ** 22,
  CACHE_SYMLINKS: 2 ** 23,
  NO_OPENDIR_SUPPORT: 2 ** 24,
  EXPLICIT_INVAL_DATA: 2 ** 25,
  HANDLE_KILLPRIV_V2: 2 ** 28,
  INIT_EXT: 2 ** 30,
  PASSTHROUGH: 2 ** 37,
} as const;

/** fuse_open_out.open_flags. */
export const FOPEN = {
  DIRECT_IO: 1 << 0,
  KEEP_CACHE: 1 << 1,
  NONSEEKABLE: 1 << 2,
  CACHE_DIR: 1 << 3,
  STREAM: 1 << 4,
  NOFLUSH: 1 << 5,
  PARALLEL_DIRECT_WRITES: 1 << 6,
  PASSTHROUGH: 1 << 7,
} as const;

/** fuse_setattr_in.valid. */
export const FATTR = {
  MODE: 1 << 0,
  UID: 1 << 1,
  GID: 1 << 2,
  SIZE: 1 << 3,
  ATIME: 1 << 4,
  MTIME: 1 << 5,
  FH: 1 << 6,
  ATIME_NOW: 1 << 7,
  MTIME_NOW: 1 << 8,
  LOCKOWNER: 1 << 9,
  CTIME: 1 << 10,
  KILL_SUIDGID: 1 << 11,
} as const;

export const GETATTR_FH = 1;
/** With HANDLE_KILLPRIV_V2 the server clears set-user-ID and set-group-ID when these say. */
export const OPEN_KILL_SUIDGID = 1;
export const WRITE_KILL_SUIDGID = 1 << 2;
export const FSYNC_FDATASYNC = 1;
/** Notification codes (written with unique 0 and the code as error). */
export const NOTIFY = { INVAL_INODE: 2, INVAL_ENTRY: 3, DELETE: 6 } as const;

/** Struct sizes. */
export const SIZE = {
  IN_HEADER: 40,
  OUT_HEADER: 16,
  ATTR: 88,
  ENTRY_OUT: 128,
  ATTR_OUT: 104,
  OPEN_OUT: 16,
  INIT_OUT: 64,
  STATFS_OUT: 80,
  WRITE_OUT: 8,
  GETXATTR_OUT: 8,
  LSEEK_OUT: 8,
  DIRENT: 24,
  DIRENTPLUS: 152,
} as const;
