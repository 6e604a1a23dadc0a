import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { arch, platform } from 'node:process';
import type Koffi from 'koffi';
import { SyscallError } from './errors.js';

/**
 * koffi's entry point also loads its installer's modules (https, zlib, crypto): about 40 ms
 * in every process, and corral starts a few per container. Its prebuilt native module,
 * loaded directly, offers the same API; the entry point stays the fallback.
 */
function loadKoffi(): typeof Koffi {
  // Made here, not at load: createRequire (and the URL of this file) costs about 1 ms of every
  // command that bundles this module but never calls libc (`corral ps`).
  const require = createRequire(import.meta.url);
  try {
    const pkg = require('koffi/package.json') as { version: string };
    const dir = dirname(require.resolve('koffi/package.json'));
    const native = require(
      join(dir, 'build', 'koffi', `${platform}_${arch}`, 'koffi.node'),
    ) as typeof Koffi & { version: string };
    if (native.version === pkg.version) return native;
  } catch {
    // not a prebuilt platform: take the regular way
  }
  return require('koffi') as typeof Koffi;
}

/**
 * An object made on its first use. koffi (its native module, then libc's prototypes) costs
 * about 10 ms to load: a process that never calls libc (`corral ps`, `corral --help`) never
 * pays it. A proxy stands for the object. With `bind`, its methods are bound to it (a koffi
 * library's native methods need their own `this`); a table of functions keeps them as they
 * are (`fn.syncfs.async`).
 */
export function lazy<T extends object>(make: () => T, bind = false): T {
  let real: T | undefined;
  const target = (): T => {
    real ??= make();
    return real;
  };
  const bound = new Map<PropertyKey, unknown>();
  return new Proxy({} as T, {
    get(_, k) {
      const t = target();
      const v = Reflect.get(t, k);
      if (!bind || typeof v !== 'function') return v;
      let b = bound.get(k);
      if (b === undefined) {
        b = v.bind(t);
        bound.set(k, b);
      }
      return b;
    },
    has: (_, k) => k in target(),
  });
}

const koffi: typeof Koffi = lazy(loadKoffi, true);

/** libc, loaded once for the whole process. */
const libc = lazy(() => koffi.load('libc.so.6'), true);

/**
 * Syscall numbers from 424 on, the same on every architecture: for calls glibc does not wrap
 * and for seccomp filters. pivot_root's differs.
 */
export const NR_COMMON: Record<string, number> = {
  pidfd_send_signal: 424,
  io_uring_setup: 425,
  io_uring_enter: 426,
  io_uring_register: 427,
  open_tree: 428,
  move_mount: 429,
  fsopen: 430,
  fsconfig: 431,
  fsmount: 432,
  fspick: 433,
  pidfd_open: 434,
  close_range: 436,
  openat2: 437,
  pidfd_getfd: 438,
  mount_setattr: 442,
};
const NR: Record<string, Record<string, number>> = {
  x64: { ...NR_COMMON, pivot_root: 155 },
  arm64: { ...NR_COMMON, pivot_root: 41 },
};

function nr(name: string): number {
  const n = NR[arch]?.[name];
  if (n === undefined) throw new Error(`@corral/sys: no syscall number for ${name} on ${arch}`);
  return n;
}

// One declaration per C prototype, made on the first call of any. syscall(2) is declared once
// per argument shape.
export const fn = lazy(() => ({
  unshare: libc.func('int unshare(int flags)'),
  setns: libc.func('int setns(int fd, int nstype)'),
  mount: libc.func(
    'int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data)',
  ),
  umount2: libc.func('int umount2(const char *target, int flags)'),
  chdir: libc.func('int chdir(const char *path)'),
  fchdir: libc.func('int fchdir(int fd)'),
  chroot: libc.func('int chroot(const char *path)'),
  sethostname: libc.func('int sethostname(const char *name, size_t len)'),
  setdomainname: libc.func('int setdomainname(const char *name, size_t len)'),
  execve: libc.func('int execve(const char *path, const char **argv, const char **envp)'),
  prctl: libc.func(
    'int prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5)',
  ),
  kill: libc.func('int kill(int pid, int sig)'),
  waitpid: libc.func('int waitpid(int pid, _Out_ int *status, int options)'),
  waitid: libc.func('int waitid(int idtype, int id, void *infop, int options)'),
  setresuid: libc.func('int setresuid(uint32_t r, uint32_t e, uint32_t s)'),
  setresgid: libc.func('int setresgid(uint32_t r, uint32_t e, uint32_t s)'),
  setgroups: libc.func('int setgroups(size_t size, const uint32_t *list)'),
  umask: libc.func('uint32_t umask(uint32_t mask)'),
  mknod: libc.func('int mknod(const char *path, uint32_t mode, uint64_t dev)'),
  fcntl: libc.func('int fcntl(int fd, int cmd, int arg)'),
  close: libc.func('int close(int fd)'),
  dup2: libc.func('int dup2(int oldfd, int newfd)'),
  setsid: libc.func('int setsid()'),
  getpid: libc.func('int getpid()'),
  gettid: libc.func('int gettid()'),
  prlimit: libc.func('int prlimit(int pid, int resource, const void *newlim, void *oldlim)'),
  ioctl: libc.func('int ioctl(int fd, unsigned long request, void *arg)'),
  socket: libc.func('int socket(int domain, int type, int protocol)'),
  capset: libc.func('int capset(void *header, void *data)'),
  ioctlInt: libc.func('int ioctl(int fd, unsigned long request, long arg)'),
  posix_openpt: libc.func('int posix_openpt(int flags)'),
  grantpt: libc.func('int grantpt(int fd)'),
  unlockpt: libc.func('int unlockpt(int fd)'),
  ptsname_r: libc.func('int ptsname_r(int fd, _Out_ char *buf, size_t buflen)'),
  openat: libc.func('int openat(int dirfd, const char *path, int flags, uint32_t mode)'),
  mkdirat: libc.func('int mkdirat(int dirfd, const char *path, uint32_t mode)'),
  mknodat: libc.func('int mknodat(int dirfd, const char *path, uint32_t mode, uint64_t dev)'),
  symlinkat: libc.func('int symlinkat(const char *target, int dirfd, const char *path)'),
  readlinkat: libc.func('intptr_t readlinkat(int dirfd, const char *path, void *buf, size_t size)'),
  unlinkat: libc.func('int unlinkat(int dirfd, const char *path, int flags)'),
  renameat2: libc.func(
    'int renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned int flags)',
  ),
  flock: libc.func('int flock(int fd, int operation)'),
  syncfs: libc.func('int syncfs(int fd)'),
  sync_file_range: libc.func(
    'int sync_file_range(int fd, int64_t offset, int64_t nbytes, unsigned int flags)',
  ),
  lgetxattr: libc.func('intptr_t lgetxattr(const char *path, const char *name, void *value, size_t size)'),
  lsetxattr: libc.func(
    'int lsetxattr(const char *path, const char *name, const void *value, size_t size, int flags)',
  ),
  llistxattr: libc.func('intptr_t llistxattr(const char *path, void *list, size_t size)'),
  lremovexattr: libc.func('int lremovexattr(const char *path, const char *name)'),
  sys_s_s: libc.func('long syscall(long nr, const char *a, const char *b)'),
  sys_i_u: libc.func('long syscall(long nr, int a, unsigned int b)'),
  sys_i_i_u: libc.func('long syscall(long nr, int a, int b, unsigned int c)'),
  sys_i_i_p_u: libc.func('long syscall(long nr, int a, int b, void *c, unsigned int d)'),
  sys_s_u: libc.func('long syscall(long nr, const char *a, unsigned int b)'),
  sys_i_u_s_s_i: libc.func(
    'long syscall(long nr, int fd, unsigned int cmd, const char *key, const char *value, int aux)',
  ),
  sys_i_u_s_p_i: libc.func(
    'long syscall(long nr, int fd, unsigned int cmd, const char *key, void *value, int aux)',
  ),
  sys_i_u_u: libc.func('long syscall(long nr, int fd, unsigned int flags, unsigned int attrs)'),
  sys_i_s_i_s_u: libc.func(
    'long syscall(long nr, int fromfd, const char *frompath, int tofd, const char *topath, unsigned int flags)',
  ),
  sys_i_s_u: libc.func('long syscall(long nr, int dfd, const char *path, unsigned int flags)'),
  sys_i_s_p_z: libc.func('long syscall(long nr, int dfd, const char *path, void *how, size_t size)'),
  sys_i_s_u_p_z: libc.func(
    'long syscall(long nr, int dfd, const char *path, unsigned int flags, void *attr, size_t size)',
  ),
}));

/** errno of the last failed call on this thread. */
export function errno(): number {
  return koffi.errno();
}

/** Throws a SyscallError when a libc call returned -1; passes the result through otherwise. */
export function check<T extends number | bigint>(name: string, result: T, args: readonly unknown[]): T {
  if (Number(result) === -1) throw new SyscallError(name, koffi.errno(), args);
  return result;
}

export { koffi, libc, nr };

/**
 * A named koffi type (struct, prototype), made once per process: koffi's names are global,
 * and a process may load this package twice (an engine keeper runs separate bundles).
 */
export function namedType<T>(name: string, make: () => T): T {
  try {
    return koffi.resolve(name) as T;
  } catch {
    return make();
  }
}
