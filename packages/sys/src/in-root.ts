// Paths of a container's filesystem, opened on the host on the container's behalf. A path
// string such as `<rootfs>/etc/passwd` would be resolved by the kernel on the host, where a
// symlink the container made (`/etc -> /`) leads out of the rootfs. Here every lookup is
// relative to an fd of the root and stays beneath it: openat2 with RESOLVE_IN_ROOT, or,
// where the kernel lacks it, a walk one component at a time with O_NOFOLLOW, following
// symlinks by hand inside the root. What is found is then used through its fd.
import { fstatSync, readSync } from 'node:fs';
import { mkdirat, openat2, readlinkat } from './at.js';
import { close, openat } from './calls.js';
import { AT, O, RESOLVE } from './constants.js';
import { isErrno, SyscallError } from './errors.js';

const ELOOP = 40;
const ENOTDIR = 20;
/** Symlinks followed in one resolution, as the kernel's limit (40). */
const MAX_LINKS = 40;

/** The path through which the kernel reaches the file an fd holds (a magic link). */
export const fdPath = (fd: number): string => `/proc/self/fd/${fd}`;

/** Opens a host folder to resolve a container's paths in (O_PATH, close-on-exec). */
export function openRoot(path: string): number {
  return openat(AT.FDCWD, path, O.PATH | O.DIRECTORY | O.CLOEXEC);
}

export interface InRootOptions {
  /** Create what is missing: folders on the way (0755), then a folder or an empty file (0644). */
  create?: 'dir' | 'file';
}

let haveOpenat2 = true;

/**
 * Opens `path` as if `rootfd` were `/`: `..` stops at the root and symlinks, absolute ones
 * too, resolve inside it; magic links (/proc/PID/root and the like) are refused. `flags` are
 * open(2) flags (O.PATH for an fd to mount on or to stat); O.NOFOLLOW refuses a final symlink.
 * With `create`, missing components are made relative to their parent's fd.
 */
export function openInRoot(rootfd: number, path: string, flags: number, options: InRootOptions = {}): number {
  if (haveOpenat2) {
    for (let attempt = 0; ; attempt++) {
      try {
        return openat2(rootfd, path, { flags, resolve: RESOLVE.IN_ROOT | RESOLVE.NO_MAGICLINKS });
      } catch (e) {
        if (isErrno(e, 'EAGAIN') && attempt < 16) continue;
        if (isErrno(e, 'ENOSYS')) {
          haveOpenat2 = false;
          break;
        }
        if (isErrno(e, 'ENOENT') && options.create) break;
        throw e;
      }
    }
  }
  return walkInRoot(rootfd, path, flags, options);
}

const split = (p: string) => p.split('/').filter((c) => c && c !== '.');

/**
 * The safe walk behind openInRoot: each component is opened with O_PATH | O_NOFOLLOW relative
 * to its parent's fd; a symlink is read (readlinkat) and its target walked from the root or
 * the parent; `..` goes back to the parent fd already held, never above the root. The found
 * file is reopened through its fd with `flags`. Exported for tests (and kernels before 5.6).
 */
export function walkInRoot(rootfd: number, path: string, flags: number, options: InRootOptions = {}): number {
  const parts = split(path);
  const held: number[] = []; // the fds of the folders walked through, root excluded
  const parent = () => held[held.length - 1] ?? rootfd;
  const drop = (n: number) => {
    for (const fd of held.splice(held.length - n)) close(fd);
  };
  let links = 0;
  try {
    while (parts.length) {
      const name = parts.shift()!;
      if (name === '..') {
        if (held.length) drop(1);
        continue;
      }
      const last = parts.length === 0;
      let fd: number;
      try {
        fd = openat(parent(), name, O.PATH | O.NOFOLLOW | O.CLOEXEC);
      } catch (e) {
        if (!options.create || !isErrno(e, 'ENOENT')) throw e;
        createAt(parent(), name, last ? options.create : 'dir');
        parts.unshift(name); // open what is there now, whatever made it
        continue;
      }
      const st = fstatSync(fd);
      if (st.isSymbolicLink() && !(last && flags & O.NOFOLLOW)) {
        const target = readlinkat(fd, '');
        close(fd);
        if (++links > MAX_LINKS) throw new SyscallError('openat', ELOOP, [path]);
        if (target.startsWith('/')) drop(held.length);
        parts.unshift(...split(target));
        continue;
      }
      if (!last && !st.isDirectory()) {
        close(fd);
        throw new SyscallError('openat', ENOTDIR, [path]);
      }
      held.push(fd);
    }
    const found = held.pop() ?? openat(rootfd, '.', O.PATH | O.CLOEXEC);
    return reopen(found, flags, path);
  } finally {
    drop(held.length);
  }
}

/** `fd` (O_PATH, the walk's result) as an fd opened with `flags`. */
function reopen(fd: number, flags: number, path: string): number {
  let keep = false;
  try {
    const st = fstatSync(fd);
    if (flags & O.DIRECTORY && !st.isDirectory()) throw new SyscallError('openat', ENOTDIR, [path]);
    if (flags & O.PATH) {
      keep = true;
      return fd;
    }
    // Only O_PATH | O_NOFOLLOW opens a symlink itself; the kernel says ELOOP otherwise.
    if (st.isSymbolicLink()) throw new SyscallError('openat', ELOOP, [path]);
    // The magic link leads to this very inode: nothing is looked up by name again.
    return openat(AT.FDCWD, fdPath(fd), (flags & ~(O.NOFOLLOW | O.CREAT | O.EXCL)) | O.CLOEXEC);
  } finally {
    if (!keep) close(fd);
  }
}

function createAt(dirfd: number, name: string, kind: 'dir' | 'file'): void {
  try {
    if (kind === 'dir') mkdirat(dirfd, name, 0o755);
    else close(openat(dirfd, name, O.WRONLY | O.CREAT | O.EXCL | O.NOFOLLOW | O.CLOEXEC, 0o644));
  } catch (e) {
    if (!isErrno(e, 'EEXIST')) throw e;
  }
}

/** What readFileInRoot reads at most unless told otherwise. */
export const MAX_ROOT_FILE = 4 << 20;

/**
 * The content of regular file `path` inside the root, or null when it does not exist. Anything
 * else (a FIFO, a device, a folder) is refused without being opened for reading, and so is a
 * file over `maxBytes`: neither can hang or exhaust the caller.
 */
export function readFileInRoot(rootfd: number, path: string, maxBytes = MAX_ROOT_FILE): Buffer | null {
  let pfd: number;
  try {
    pfd = openInRoot(rootfd, path, O.PATH);
  } catch (e) {
    if (isErrno(e, 'ENOENT', 'ENOTDIR')) return null;
    throw e;
  }
  let fd: number;
  try {
    const st = fstatSync(pfd);
    if (!st.isFile()) throw new Error(`${path} is not a regular file`);
    if (st.size > maxBytes) throw new Error(`${path} is larger than ${maxBytes} bytes`);
    fd = openat(AT.FDCWD, fdPath(pfd), O.RDONLY | O.NONBLOCK | O.NOCTTY | O.CLOEXEC);
  } finally {
    close(pfd);
  }
  try {
    return readCapped(fd, path, maxBytes);
  } finally {
    close(fd);
  }
}

function readCapped(fd: number, path: string, maxBytes: number): Buffer {
  const chunks: Buffer[] = [];
  let total = 0;
  for (;;) {
    const buf = Buffer.alloc(Math.min(64 << 10, maxBytes + 1 - total));
    const n = readSync(fd, buf, 0, buf.length, null);
    if (n === 0) break;
    total += n;
    if (total > maxBytes) throw new Error(`${path} is larger than ${maxBytes} bytes`);
    chunks.push(buf.subarray(0, n));
  }
  return Buffer.concat(chunks, total);
}
