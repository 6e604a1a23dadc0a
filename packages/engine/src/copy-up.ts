// Docker fills an empty volume with what the image has at the mount's target the first time
// it is mounted. The image's folder is the container's: it is found inside the container's
// root (openInRoot) and walked by fds, each entry opened O_NOFOLLOW relative to its parent,
// so no symlink of the image leads the copy to a host file; symlinks are copied as links.
import {
  closeSync,
  fchmodSync,
  fchownSync,
  fstatSync,
  futimesSync,
  lchownSync,
  readdirSync,
  readSync,
  type Stats,
  writeSync,
} from 'node:fs';
import {
  AT,
  close,
  fdPath,
  isErrno,
  mkdirat,
  mknodat,
  O,
  openat,
  openInRoot,
  openRoot,
  readlinkat,
  S_IF,
  symlinkat,
} from '@corral/sys';

const DIR = O.RDONLY | O.DIRECTORY | O.NOFOLLOW | O.CLOEXEC;

/**
 * Copies the folder `path` of the container's root (mounted at `rootfs`) into the volume
 * folder `dest` when `dest` is empty, with owners, modes and times; the volume's own folder
 * takes the owner and mode of the image's. Nothing happens when the image has no folder there.
 */
export function copyUp(rootfs: string, path: string, dest: string): boolean {
  const root = openRoot(rootfs);
  let src: number;
  try {
    src = openInRoot(root, path, DIR & ~O.NOFOLLOW);
  } catch (e) {
    if (isErrno(e, 'ENOENT', 'ENOTDIR')) return false;
    throw e;
  } finally {
    close(root);
  }
  try {
    const dst = openat(AT.FDCWD, dest, DIR);
    try {
      if (readdirSync(fdPath(dst)).length) return false;
      copyTree(src, dst);
      setMeta(dst, fstatSync(src));
      return true;
    } finally {
      closeSync(dst);
    }
  } finally {
    closeSync(src);
  }
}

function setMeta(fd: number, st: Stats): void {
  fchownSync(fd, st.uid, st.gid);
  fchmodSync(fd, st.mode & 0o7777); // after chown, which clears setuid bits
  futimesSync(fd, st.atime, st.mtime);
}

function copyTree(src: number, dst: number): void {
  for (const name of readdirSync(fdPath(src))) {
    const probe = openat(src, name, O.PATH | O.NOFOLLOW | O.CLOEXEC);
    let st: Stats;
    try {
      st = fstatSync(probe);
    } finally {
      close(probe);
    }
    if (st.isDirectory()) {
      mkdirat(dst, name, 0o700);
      const s = openat(src, name, DIR);
      const d = openat(dst, name, DIR);
      try {
        copyTree(s, d);
        setMeta(d, st);
      } finally {
        close(s);
        close(d);
      }
    } else if (st.isFile()) {
      const s = openat(src, name, O.RDONLY | O.NOFOLLOW | O.NONBLOCK | O.CLOEXEC);
      const d = openat(dst, name, O.WRONLY | O.CREAT | O.EXCL | O.NOFOLLOW | O.CLOEXEC, 0o600);
      try {
        copyData(s, d);
        setMeta(d, st);
      } finally {
        close(s);
        close(d);
      }
    } else if (st.isSymbolicLink()) {
      symlinkat(readlinkat(src, name), dst, name);
      // The magic link of the folder, then the name itself: the link is changed, not its target.
      lchownSync(`${fdPath(dst)}/${name}`, st.uid, st.gid);
    } else if (st.isFIFO()) {
      mknodat(dst, name, S_IF.FIFO | (st.mode & 0o7777));
    }
    // Devices and sockets are left out: a volume holds data.
  }
}

function copyData(src: number, dst: number): void {
  const buf = Buffer.allocUnsafe(1 << 20);
  for (;;) {
    const n = readSync(src, buf, 0, buf.length, null);
    if (n === 0) return;
    let off = 0;
    while (off < n) off += writeSync(dst, buf, off, n - off);
  }
}
