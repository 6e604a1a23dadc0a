// The *at calls: every path is looked up relative to a directory fd, so what a name means is
// fixed by an fd corral holds rather than by a path string that a container could change.
import { O } from './constants.js';
import { SyscallError } from './errors.js';
import { check, errno, fn, nr } from './libc.js';

/** struct open_how of openat2(2): flags (O_*), mode (with O_CREAT) and resolve (RESOLVE_*). */
export interface OpenHow {
  flags: number;
  mode?: number;
  resolve?: number;
}

/**
 * openat2(2): open `path` relative to `dirfd` with resolve restrictions, e.g.
 * RESOLVE.IN_ROOT, which resolves `..` and absolute symlinks as if `dirfd` were `/`. Throws
 * ENOSYS on kernels before 5.6, and EAGAIN when a rename raced a `..` lookup (try again).
 */
export function openat2(dirfd: number, path: string, how: OpenHow): number {
  const buf = Buffer.alloc(24);
  buf.writeBigUInt64LE(BigInt(how.flags | O.CLOEXEC), 0);
  // The kernel refuses a mode without O_CREAT (EINVAL).
  buf.writeBigUInt64LE(BigInt(how.flags & O.CREAT ? (how.mode ?? 0) : 0), 8);
  buf.writeBigUInt64LE(BigInt(how.resolve ?? 0), 16);
  return check('openat2', Number(fn.sys_i_s_p_z(nr('openat2'), dirfd, path, buf, 24)), [dirfd, path]);
}

export function mkdirat(dirfd: number, path: string, mode: number): void {
  check('mkdirat', fn.mkdirat(dirfd, path, mode), [dirfd, path, `0${mode.toString(8)}`]);
}

export function mknodat(dirfd: number, path: string, mode: number, dev: bigint | number = 0): void {
  check('mknodat', fn.mknodat(dirfd, path, mode, BigInt(dev)), [dirfd, path, `0${mode.toString(8)}`]);
}

export function symlinkat(target: string, dirfd: number, path: string): void {
  check('symlinkat', fn.symlinkat(target, dirfd, path), [target, dirfd, path]);
}

export function unlinkat(dirfd: number, path: string, flags = 0): void {
  check('unlinkat', fn.unlinkat(dirfd, path, flags), [dirfd, path]);
}

/**
 * readlinkat(2). With an empty `path` and an fd opened with O_PATH | O_NOFOLLOW on a
 * symlink, reads that very link.
 */
export function readlinkat(dirfd: number, path: string): string {
  const buf = Buffer.alloc(4096);
  const n = Number(fn.readlinkat(dirfd, path, buf, buf.length));
  if (n === -1) throw new SyscallError('readlinkat', errno(), [dirfd, path]);
  return buf.toString('utf8', 0, n);
}

/** Flags of renameat2(2). */
export const RENAME = { NOREPLACE: 1, EXCHANGE: 2, WHITEOUT: 4 } as const;

/** renameat2(2): with RENAME.EXCHANGE swaps two names atomically (a folder and a symlink too). */
export function renameat2(
  olddirfd: number,
  oldpath: string,
  newdirfd: number,
  newpath: string,
  flags = 0,
): void {
  check('renameat2', fn.renameat2(olddirfd, oldpath, newdirfd, newpath, flags), [oldpath, newpath]);
}
