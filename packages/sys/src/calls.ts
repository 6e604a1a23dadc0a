import { AT, F, LOCK, O, P, WAIT } from './constants.js';
import { SyscallError } from './errors.js';
import { check, errno, fn, nr } from './libc.js';

const ENODATA = 61;
const ERANGE = 34;
const EWOULDBLOCK = 11;

/** Flags are numbers built from the typed constants (CLONE, MS, MNT, ...). */
type Flags = number;

export function unshare(flags: Flags): void {
  check('unshare', fn.unshare(flags), [`0x${flags.toString(16)}`]);
}

export function setns(fd: number, nstype: Flags = 0): void {
  check('setns', fn.setns(fd, nstype), [fd, `0x${nstype.toString(16)}`]);
}

export function mount(
  source: string | null,
  target: string,
  fstype: string | null,
  flags: Flags,
  data: string | null = null,
): void {
  check('mount', fn.mount(source, target, fstype, flags, data), [source ?? fstype ?? 'none', target]);
}

export function umount2(target: string, flags: Flags = 0): void {
  check('umount2', fn.umount2(target, flags), [target]);
}

export function pivotRoot(newRoot: string, putOld: string): void {
  check('pivot_root', Number(fn.sys_s_s(nr('pivot_root'), newRoot, putOld)), [newRoot, putOld]);
}

export function chdir(path: string): void {
  check('chdir', fn.chdir(path), [path]);
}

export function fchdir(fd: number): void {
  check('fchdir', fn.fchdir(fd), [fd]);
}

export function chroot(path: string): void {
  check('chroot', fn.chroot(path), [path]);
}

export function sethostname(name: string): void {
  check('sethostname', fn.sethostname(name, Buffer.byteLength(name)), [name]);
}

export function setdomainname(name: string): void {
  check('setdomainname', fn.setdomainname(name, Buffer.byteLength(name)), [name]);
}

/**
 * Replaces the whole process with `path`. Returns only by throwing. File descriptors the
 * program must keep need FD_CLOEXEC cleared first (see clearCloexec): Node sets it on 0-2.
 */
export function execve(path: string, argv: readonly string[], envp: readonly string[]): never {
  fn.execve(path, [...argv, null], [...envp, null]);
  throw new SyscallError('execve', errno(), [path]);
}

export function prctl(option: number, a2 = 0, a3 = 0, a4 = 0, a5 = 0): number {
  return check('prctl', fn.prctl(option, a2, a3, a4, a5), [option]);
}

export function kill(pid: number, signal: number): void {
  check('kill', fn.kill(pid, signal), [pid, signal]);
}

export function pidfdOpen(pid: number, flags = 0): number {
  return check('pidfd_open', Number(fn.sys_i_u(nr('pidfd_open'), pid, flags)), [pid]);
}

/**
 * pidfd_getfd(2): a copy of file descriptor `targetFd` of the process behind `pidfd` (needs
 * ptrace rights over it, which a parent running as root has). How the runtime takes the
 * terminal master that a container's init opened inside the container.
 */
export function pidfdGetfd(pidfd: number, targetFd: number): number {
  return check('pidfd_getfd', Number(fn.sys_i_i_u(nr('pidfd_getfd'), pidfd, targetFd, 0)), [pidfd, targetFd]);
}

export function pidfdSendSignal(pidfd: number, signal: number): void {
  check('pidfd_send_signal', Number(fn.sys_i_i_p_u(nr('pidfd_send_signal'), pidfd, signal, null, 0)), [
    pidfd,
    signal,
  ]);
}

/** How a waited-for process ended. */
export interface WaitStatus {
  pid: number;
  /** Exit code when the process exited normally. */
  exitCode: number | null;
  /** Signal number when the process was killed by a signal. */
  signal: number | null;
  /** Docker's single number: the exit code, or 128 + signal. */
  code: number;
  coreDumped: boolean;
}

export function decodeWaitStatus(pid: number, status: number): WaitStatus {
  const termsig = status & 0x7f;
  if (termsig === 0) {
    const exitCode = (status >> 8) & 0xff;
    return { pid, exitCode, signal: null, code: exitCode, coreDumped: false };
  }
  return { pid, exitCode: null, signal: termsig, code: 128 + termsig, coreDumped: (status & 0x80) !== 0 };
}

/**
 * waitpid(2). With WAIT.NOHANG returns null when no child has changed state. Blocks the
 * calling thread otherwise: meant for init processes that run synchronously.
 */
export function waitpid(pid: number, options: Flags = 0): WaitStatus | null {
  const out = [0];
  const r = check('waitpid', fn.waitpid(pid, out, options), [pid]);
  if (r === 0) return null;
  return decodeWaitStatus(r, out[0]);
}

/** siginfo of waitid(2): the pid and status of a child that changed state. */
export interface WaitIdResult {
  pid: number;
  /** CLD_EXITED (1), CLD_KILLED (2), CLD_DUMPED (3), ... */
  reason: number;
  status: number;
}

/**
 * waitid(2): P.PID, P.PIDFD or P.ALL. With WAIT.NOHANG and nothing to report returns null.
 * With WAIT.NOWAIT the child is left waitable (a peek).
 */
export function waitid(idtype: number, id: number, options: Flags): WaitIdResult | null {
  const info = Buffer.alloc(128);
  check('waitid', fn.waitid(idtype, id, info, options), [idtype, id]);
  // siginfo_t: si_signo, si_errno, si_code (3 ints), then for SIGCHLD si_pid, si_uid, si_status.
  const pid = info.readInt32LE(16);
  if (pid === 0) return null;
  return { pid, reason: info.readInt32LE(8), status: info.readInt32LE(24) };
}

/** Waits on a pidfd (P_PIDFD) without blocking: null while the process runs. */
export function pidfdPoll(pidfd: number, options: Flags = WAIT.EXITED | WAIT.NOHANG): WaitIdResult | null {
  return waitid(P.PIDFD, pidfd, options);
}

export function setresuid(r: number, e: number, s: number): void {
  check('setresuid', fn.setresuid(r, e, s), [r, e, s]);
}

export function setresgid(r: number, e: number, s: number): void {
  check('setresgid', fn.setresgid(r, e, s), [r, e, s]);
}

export function setgroups(gids: readonly number[]): void {
  check('setgroups', fn.setgroups(gids.length, gids.length ? Uint32Array.from(gids) : null), [
    gids.join(','),
  ]);
}

/** Sets the umask and returns the previous one. */
export function umask(mask: number): number {
  return fn.umask(mask);
}

export function makedev(major: number, minor: number): bigint {
  const ma = BigInt(major);
  const mi = BigInt(minor);
  return ((ma & 0xfffff000n) << 32n) | ((ma & 0xfffn) << 8n) | ((mi & 0xffffff00n) << 12n) | (mi & 0xffn);
}

export function mknod(path: string, mode: number, dev: bigint | number = 0): void {
  check('mknod', fn.mknod(path, mode, BigInt(dev)), [path, `0${mode.toString(8)}`]);
}

/** Lets `fd` survive execve (clears FD_CLOEXEC). */
export function clearCloexec(fd: number): void {
  check('fcntl', fn.fcntl(fd, F.SETFD, 0), [fd, 'F_SETFD', 0]);
}

/** Makes `fd` close on execve (sets FD_CLOEXEC). */
export function setCloexec(fd: number): void {
  check('fcntl', fn.fcntl(fd, F.SETFD, F.FD_CLOEXEC), [fd, 'F_SETFD', 'FD_CLOEXEC']);
}

export function close(fd: number): void {
  check('close', fn.close(fd), [fd]);
}

export function dup2(oldfd: number, newfd: number): number {
  return check('dup2', fn.dup2(oldfd, newfd), [oldfd, newfd]);
}

export function setsid(): number {
  return check('setsid', fn.setsid(), []);
}

export function getpid(): number {
  return fn.getpid();
}

export function gettid(): number {
  return fn.gettid();
}

export function ioctl(fd: number, request: number, arg: Buffer | null = null): number {
  return check('ioctl', fn.ioctl(fd, request, arg), [fd, `0x${request.toString(16)}`]);
}

/**
 * socket(2). The socket belongs to the network namespace of the calling thread at this moment:
 * one made while the main thread is inside a new namespace keeps acting there (its ioctls
 * configure that namespace's links) after the thread has gone back.
 */
export function socket(domain: number, type: number, protocol = 0): number {
  return check('socket', fn.socket(domain, type, protocol), [domain, type, protocol]);
}

/** What corral uses of socket(2) and netdevice(7): an inet datagram socket, link flags. */
export const NETDEV = {
  AF_INET: 2,
  SOCK_DGRAM: 2,
  SOCK_CLOEXEC: 0o2000000,
  SIOCGIFFLAGS: 0x8913,
  SIOCSIFFLAGS: 0x8914,
  IFF_UP: 0x1,
} as const;

/** ioctl(2) requests of terminals. */
export const TIOC = { SCTTY: 0x540e, GWINSZ: 0x5413, SWINSZ: 0x5414 } as const;

/** A pseudo-terminal pair: `master` stays with corral, `slave` becomes the program's terminal. */
export interface Pty {
  master: number;
  slave: number;
  path: string;
}

/** Opens a new pseudo-terminal (posix_openpt, grantpt, unlockpt, then its slave). */
export function openPty(): Pty {
  const master = check('posix_openpt', fn.posix_openpt(O.RDWR | O.NOCTTY | O.CLOEXEC), []);
  try {
    check('grantpt', fn.grantpt(master), [master]);
    check('unlockpt', fn.unlockpt(master), [master]);
    const buf = Buffer.alloc(128);
    const r = fn.ptsname_r(master, buf, buf.length);
    if (r !== 0) throw new SyscallError('ptsname_r', r, [master]);
    const path = buf.toString('utf8', 0, buf.indexOf(0));
    const slave = openat(AT.FDCWD, path, O.RDWR | O.NOCTTY | O.CLOEXEC);
    return { master, slave, path };
  } catch (e) {
    fn.close(master);
    throw e;
  }
}

/** Makes `fd` (a terminal) the controlling terminal of the calling session leader. */
export function setControllingTerminal(fd: number): void {
  check('ioctl', fn.ioctlInt(fd, TIOC.SCTTY, 0), [fd, 'TIOCSCTTY']);
}

/** Sets a terminal's size (TIOCSWINSZ), as rows and columns. */
export function setWindowSize(fd: number, rows: number, columns: number): void {
  const ws = Buffer.alloc(8);
  ws.writeUInt16LE(rows, 0);
  ws.writeUInt16LE(columns, 2);
  ioctl(fd, TIOC.SWINSZ, ws);
}

export function openat(dirfd: number, path: string, flags: number, mode = 0): number {
  return check('openat', fn.openat(dirfd, path, flags, mode), [dirfd, path]);
}

/** syncfs(2): writes out everything cached for the filesystem holding `fd`. */
export function syncfs(fd: number): void {
  check('syncfs', fn.syncfs(fd), [fd]);
}

/**
 * Starts the writeback of a file range (sync_file_range(2) with SYNC_FILE_RANGE_WRITE) on
 * koffi's worker thread, as it can block while the device queue is full. A hint, so that a
 * later fdatasync finds most of the data on disk: it resolves false on failure (errno is
 * not readable across threads) and never rejects.
 */
export function startWriteback(fd: number, offset: number, nbytes: number): Promise<boolean> {
  return new Promise((resolve) => {
    fn.sync_file_range.async(fd, offset, nbytes, 2, (err: unknown, rc: number) => resolve(!err && rc === 0));
  });
}

/**
 * syncfs(2) on koffi's worker thread, so the event loop goes on while the disk catches up.
 * errno cannot be read across threads: on failure the call is made again here to name it.
 */
export function syncfsAsync(fd: number): Promise<void> {
  return new Promise((resolve, reject) => {
    fn.syncfs.async(fd, (err: unknown, rc: number) => {
      if (err) reject(err);
      else if (rc === 0) resolve();
      else {
        try {
          syncfs(fd);
          resolve();
        } catch (e) {
          reject(e);
        }
      }
    });
  });
}

/**
 * flock(2): LOCK.SH / LOCK.EX (| LOCK.NB), LOCK.UN. The kernel drops the lock when the
 * holder dies. With LOCK.NB returns false instead of blocking when the lock is taken.
 */
export function flock(fd: number, operation: number): boolean {
  if (fn.flock(fd, operation) === 0) return true;
  const e = errno();
  if (e === EWOULDBLOCK && (operation & LOCK.NB) !== 0) return false;
  throw new SyscallError('flock', e, [fd, operation]);
}

// Extended attributes, without following a final symlink (the l* calls).

/** The value of xattr `name` of `path`, or null when it has none (ENODATA). */
export function lgetxattr(path: string, name: string): Buffer | null {
  // Ask for the size first; retry when the value grew in between (ERANGE).
  for (;;) {
    const size = Number(fn.lgetxattr(path, name, null, 0));
    if (size === -1) {
      if (errno() === ENODATA) return null;
      throw new SyscallError('lgetxattr', errno(), [path, name]);
    }
    const buf = Buffer.alloc(size);
    const got = Number(fn.lgetxattr(path, name, buf, size));
    if (got !== -1) return buf.subarray(0, got);
    if (errno() === ENODATA) return null;
    if (errno() !== ERANGE) throw new SyscallError('lgetxattr', errno(), [path, name]);
  }
}

/** Sets xattr `name` of `path`; `flags` is XATTR.CREATE or XATTR.REPLACE (default: either). */
export function lsetxattr(path: string, name: string, value: Buffer | string, flags = 0): void {
  const buf = typeof value === 'string' ? Buffer.from(value) : value;
  check('lsetxattr', fn.lsetxattr(path, name, buf, buf.length, flags), [path, name]);
}

/** The names of the xattrs of `path` that the caller may see. */
export function llistxattr(path: string): string[] {
  for (;;) {
    const size = check('llistxattr', Number(fn.llistxattr(path, null, 0)), [path]);
    if (size === 0) return [];
    const buf = Buffer.alloc(size);
    const got = Number(fn.llistxattr(path, buf, size));
    if (got === -1) {
      if (errno() === ERANGE) continue;
      throw new SyscallError('llistxattr', errno(), [path]);
    }
    return buf.subarray(0, got).toString('latin1').split('\0').filter(Boolean);
  }
}

export function lremovexattr(path: string, name: string): void {
  check('lremovexattr', fn.lremovexattr(path, name), [path, name]);
}

/** A resource limit; `Infinity` stands for RLIM_INFINITY. */
export interface Rlimit {
  soft: number;
  hard: number;
}

const RLIM_INFINITY = 0xffffffffffffffffn;
const toRlim = (v: number) => (v === Number.POSITIVE_INFINITY ? RLIM_INFINITY : BigInt(v));
const fromRlim = (v: bigint) => (v === RLIM_INFINITY ? Number.POSITIVE_INFINITY : Number(v));

/** prlimit(2) on `pid` (0: the caller). Sets when `limit` is given; returns the old limit. */
export function prlimit(pid: number, resource: number, limit?: Rlimit): Rlimit {
  const oldBuf = Buffer.alloc(16);
  let newBuf: Buffer | null = null;
  if (limit) {
    newBuf = Buffer.alloc(16);
    newBuf.writeBigUInt64LE(toRlim(limit.soft), 0);
    newBuf.writeBigUInt64LE(toRlim(limit.hard), 8);
  }
  check('prlimit', fn.prlimit(pid, resource, newBuf, oldBuf), [
    pid,
    resource,
    limit ? `${limit.soft}:${limit.hard}` : '',
  ]);
  return { soft: fromRlim(oldBuf.readBigUInt64LE(0)), hard: fromRlim(oldBuf.readBigUInt64LE(8)) };
}

// The new mount API.

export function fsopen(fsname: string, flags = 0): number {
  return check('fsopen', Number(fn.sys_s_u(nr('fsopen'), fsname, flags)), [fsname]);
}

/** fsconfig(2) with a string value (FSCONFIG.SET_STRING) or a flag/command (value null). */
export function fsconfig(
  fd: number,
  cmd: number,
  key: string | null,
  value: string | null = null,
  aux = 0,
): void {
  check('fsconfig', Number(fn.sys_i_u_s_s_i(nr('fsconfig'), fd, cmd, key, value, aux)), [
    fd,
    cmd,
    key ?? '',
    value ?? '',
  ]);
}

/** fsconfig(2) FSCONFIG.SET_FD: a key whose value is an open fd (e.g. `lowerdir+`). */
export function fsconfigFd(fd: number, key: string, valueFd: number): void {
  check('fsconfig', Number(fn.sys_i_u_s_p_i(nr('fsconfig'), fd, 5, key, null, valueFd)), [
    fd,
    'SET_FD',
    key,
    valueFd,
  ]);
}

export function fsmount(fsfd: number, flags: number, attrs: number): number {
  return check('fsmount', Number(fn.sys_i_u_u(nr('fsmount'), fsfd, flags, attrs)), [fsfd]);
}

export function moveMount(
  fromDirfd: number,
  fromPath: string,
  toDirfd: number,
  toPath: string,
  flags: number,
): void {
  check(
    'move_mount',
    Number(fn.sys_i_s_i_s_u(nr('move_mount'), fromDirfd, fromPath, toDirfd, toPath, flags)),
    [fromPath, toPath],
  );
}

export function openTree(dirfd: number, path: string, flags: number): number {
  return check('open_tree', Number(fn.sys_i_s_u(nr('open_tree'), dirfd, path, flags)), [dirfd, path]);
}

/** mount_setattr(2): change mount attributes (MOUNT_ATTR) and propagation of a mount. */
export function mountSetattr(
  dirfd: number,
  path: string,
  flags: number,
  attr: { set?: number; clear?: number; propagation?: number },
): void {
  const buf = Buffer.alloc(32);
  buf.writeBigUInt64LE(BigInt(attr.set ?? 0), 0);
  buf.writeBigUInt64LE(BigInt(attr.clear ?? 0), 8);
  buf.writeBigUInt64LE(BigInt(attr.propagation ?? 0), 16);
  check('mount_setattr', Number(fn.sys_i_s_u_p_z(nr('mount_setattr'), dirfd, path, flags, buf, 32)), [
    dirfd,
    path,
  ]);
}

export { WAIT };
