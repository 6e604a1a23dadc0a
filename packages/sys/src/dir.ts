// Walking a folder that someone else may be changing (a running container's upper layer):
// each folder is held open and its entries are reached through that fd, never through a path
// string from the top, so a folder swapped for a symlink to `/` mid-walk leads nowhere.
import { fstatSync, lstatSync, readdirSync, readlinkSync, type Stats } from 'node:fs';
import { close, openat } from './calls.js';
import { AT, O } from './constants.js';
import { SyscallError } from './errors.js';
import { fdPath } from './in-root.js';

const EINVAL = 22;

/** An open folder whose entries are looked up relative to its fd, never following a final symlink. */
export class DirFd {
  private constructor(readonly fd: number) {}

  /** Opens a folder that corral owns (the top of a walk), following nothing but this path. */
  static open(path: string): DirFd {
    return new DirFd(openat(AT.FDCWD, path, O.RDONLY | O.DIRECTORY | O.CLOEXEC));
  }

  /**
   * A path for calls that take one and do not follow its last component (lstat, readlink,
   * the l*xattr calls): the kernel reaches this folder through the fd's magic link and
   * looks up only `name` in it.
   */
  at(name: string): string {
    if (!name || name === '.' || name === '..' || name.includes('/'))
      throw new SyscallError('openat', EINVAL, [name], 'not a single file name');
    return `${fdPath(this.fd)}/${name}`;
  }

  /** The names in this folder, unsorted. */
  names(): string[] {
    return readdirSync(fdPath(this.fd));
  }

  lstat(name: string): Stats {
    return lstatSync(this.at(name));
  }

  readlink(name: string): string {
    return readlinkSync(this.at(name));
  }

  /** Subfolder `name`; ELOOP or ENOTDIR when it is (now) a symlink or something else. */
  dir(name: string): DirFd {
    this.at(name);
    return new DirFd(openat(this.fd, name, O.RDONLY | O.DIRECTORY | O.NOFOLLOW | O.CLOEXEC));
  }

  /**
   * Regular file `name`, opened for reading, with its stat. Anything else (a symlink put in
   * its place, a FIFO, a device) gives null without having been opened for reading (O_PATH
   * first): nothing is followed, nothing can hang the reader or act on open.
   */
  file(name: string): { fd: number; st: Stats } | null {
    this.at(name);
    const pfd = openat(this.fd, name, O.PATH | O.NOFOLLOW | O.CLOEXEC);
    try {
      const st = fstatSync(pfd);
      if (!st.isFile()) return null;
      return { fd: openat(AT.FDCWD, fdPath(pfd), O.RDONLY | O.NONBLOCK | O.NOCTTY | O.CLOEXEC), st };
    } finally {
      close(pfd);
    }
  }

  close(): void {
    close(this.fd);
  }
}
