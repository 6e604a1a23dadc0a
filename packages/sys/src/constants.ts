/** Namespace flags for unshare(2), setns(2) and clone(2). */
export const CLONE = {
  NEWTIME: 0x00000080,
  FS: 0x00000200,
  FILES: 0x00000400,
  NEWNS: 0x00020000,
  NEWCGROUP: 0x02000000,
  NEWUTS: 0x04000000,
  NEWIPC: 0x08000000,
  NEWUSER: 0x10000000,
  NEWPID: 0x20000000,
  NEWNET: 0x40000000,
} as const;

/** Flags of mount(2). */
export const MS = {
  RDONLY: 1,
  NOSUID: 2,
  NODEV: 4,
  NOEXEC: 8,
  SYNCHRONOUS: 16,
  REMOUNT: 32,
  MANDLOCK: 64,
  DIRSYNC: 128,
  NOSYMFOLLOW: 256,
  NOATIME: 1024,
  NODIRATIME: 2048,
  BIND: 4096,
  MOVE: 8192,
  REC: 16384,
  SILENT: 32768,
  POSIXACL: 1 << 16,
  UNBINDABLE: 1 << 17,
  PRIVATE: 1 << 18,
  SLAVE: 1 << 19,
  SHARED: 1 << 20,
  RELATIME: 1 << 21,
  STRICTATIME: 1 << 24,
  LAZYTIME: 1 << 25,
} as const;

/** Flags of umount2(2). */
export const MNT = { FORCE: 1, DETACH: 2, EXPIRE: 4, NOFOLLOW: 8 } as const;

/** prctl(2) options used by the runtime. */
export const PR = {
  SET_PDEATHSIG: 1,
  GET_PDEATHSIG: 2,
  SET_DUMPABLE: 4,
  SET_NAME: 15,
  SET_SECCOMP: 22,
  SET_CHILD_SUBREAPER: 36,
  GET_CHILD_SUBREAPER: 37,
  SET_NO_NEW_PRIVS: 38,
  GET_NO_NEW_PRIVS: 39,
} as const;

/** Options of waitpid(2)/waitid(2). */
export const WAIT = {
  NOHANG: 1,
  UNTRACED: 2,
  STOPPED: 2,
  EXITED: 4,
  CONTINUED: 8,
  NOWAIT: 0x01000000,
  ALL: 0x40000000,
  CLONE: 0x80000000,
} as const;

/** idtype of waitid(2). */
export const P = { ALL: 0, PID: 1, PGID: 2, PIDFD: 3 } as const;

/** File type bits of mknod(2). */
export const S_IF = {
  SOCK: 0o140000,
  LNK: 0o120000,
  REG: 0o100000,
  BLK: 0o060000,
  DIR: 0o040000,
  CHR: 0o020000,
  FIFO: 0o010000,
} as const;

/** fcntl(2) commands and flags. */
export const F = { GETFD: 1, SETFD: 2, GETFL: 3, SETFL: 4, FD_CLOEXEC: 1 } as const;

/** open(2) flags needed with the *at calls and the new mount API. */
export const O = {
  RDONLY: 0,
  WRONLY: 1,
  RDWR: 2,
  CREAT: 0o100,
  EXCL: 0o200,
  NOCTTY: 0o400,
  TRUNC: 0o1000,
  NONBLOCK: 0o4000,
  DIRECTORY: 0o200000,
  NOFOLLOW: 0o400000,
  CLOEXEC: 0o2000000,
  PATH: 0o10000000,
} as const;

/** resolve flags of openat2(2)'s struct open_how. */
export const RESOLVE = {
  NO_XDEV: 0x01,
  NO_MAGICLINKS: 0x02,
  NO_SYMLINKS: 0x04,
  BENEATH: 0x08,
  IN_ROOT: 0x10,
  CACHED: 0x20,
} as const;

/** Operations of flock(2). */
export const LOCK = { SH: 1, EX: 2, NB: 4, UN: 8 } as const;

export const AT = {
  FDCWD: -100,
  SYMLINK_NOFOLLOW: 0x100,
  REMOVEDIR: 0x200,
  SYMLINK_FOLLOW: 0x400,
  EMPTY_PATH: 0x1000,
  RECURSIVE: 0x8000,
} as const;

/** The new mount API: fsopen, fsconfig, fsmount, move_mount, open_tree, mount_setattr. */
export const FSOPEN = { CLOEXEC: 1 } as const;
export const FSCONFIG = {
  SET_FLAG: 0,
  SET_STRING: 1,
  SET_BINARY: 2,
  SET_PATH: 3,
  SET_PATH_EMPTY: 4,
  SET_FD: 5,
  CMD_CREATE: 6,
  CMD_RECONFIGURE: 7,
  CMD_CREATE_EXCL: 8,
} as const;
export const FSMOUNT = { CLOEXEC: 1 } as const;
export const MOUNT_ATTR = {
  RDONLY: 0x1,
  NOSUID: 0x2,
  NODEV: 0x4,
  NOEXEC: 0x8,
  RELATIME: 0x0,
  NOATIME: 0x10,
  STRICTATIME: 0x20,
  NODIRATIME: 0x80,
  IDMAP: 0x100000,
  NOSYMFOLLOW: 0x200000,
} as const;
export const MOVE_MOUNT = {
  F_SYMLINKS: 1,
  F_AUTOMOUNTS: 2,
  F_EMPTY_PATH: 4,
  T_SYMLINKS: 0x10,
  T_AUTOMOUNTS: 0x20,
  T_EMPTY_PATH: 0x40,
} as const;
export const OPEN_TREE = { CLONE: 1, CLOEXEC: 0o2000000 } as const;

/** Resource numbers of getrlimit/setrlimit/prlimit. */
export const RLIMIT = {
  CPU: 0,
  FSIZE: 1,
  DATA: 2,
  STACK: 3,
  CORE: 4,
  RSS: 5,
  NPROC: 6,
  NOFILE: 7,
  MEMLOCK: 8,
  AS: 9,
  LOCKS: 10,
  SIGPENDING: 11,
  MSGQUEUE: 12,
  NICE: 13,
  RTPRIO: 14,
  RTTIME: 15,
} as const;
export type RlimitName = keyof typeof RLIMIT;

/** Flags of setxattr(2). */
export const XATTR = { CREATE: 1, REPLACE: 2 } as const;
