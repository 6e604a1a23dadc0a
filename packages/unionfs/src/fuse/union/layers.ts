// Reaching entries inside the layers. Each layer is an fd opened on its root when the
// server starts; a node's folder in a layer is opened with openat2 relative to that fd,
// beneath it, following no symlink at all and crossing no mount, and an entry is then
// reached by its single name relative to that folder's fd with AT_SYMLINK_NOFOLLOW. So no
// name the container made (a symlink to /, a folder renamed meanwhile) leads to a host path.
import { cstr, RESOLVE, rawClose, rawGetdents, rawLgetxattr, rawOpenat2, rawStatx, STX } from '@corral/sys';
import { OPAQUE_XATTR as OPAQUE_XATTR_NAME } from '../../whiteout.js';
import { N, NF, type NodeTable } from './nodes.js';

export const O_RDONLY = 0;
export const O_WRONLY = 1;
export const O_RDWR = 2;
export const O_CREAT = 0o100;
export const O_EXCL = 0o200;
export const O_NOCTTY = 0o400;
export const O_TRUNC = 0o1000;
export const O_APPEND = 0o2000;
export const O_NONBLOCK = 0o4000;
export const O_DIRECTORY = 0o200000;
export const O_NOFOLLOW = 0o400000;
export const O_CLOEXEC = 0o2000000;
export const O_PATH = 0o10000000;
export const O_TMPFILE = 0o20000000 | O_DIRECTORY;
export const AT_SYMLINK_NOFOLLOW = 0x100;
export const AT_REMOVEDIR = 0x200;
export const AT_EMPTY_PATH = 0x1000;

export const S_IFMT = 0o170000;
export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;
export const S_IFLNK = 0o120000;
export const S_IFCHR = 0o020000;

export const ENOENT = 2;
export const EIO = 5;
export const EBADF = 9;
export const EEXIST = 17;
export const EXDEV = 18;
export const ENOTDIR = 20;
export const EISDIR = 21;
export const EINVAL = 22;
export const ENOSPC = 28;
export const EROFS = 30;
export const ERANGE = 34;
export const ENAMETOOLONG = 36;
export const ENOSYS = 38;
export const ENOTEMPTY = 39;
export const ELOOP = 40;
export const ENODATA = 61;
export const EOPNOTSUPP = 95;
export const ESTALE = 116;

/** Folder fds each thread keeps open. */
const DIR_CACHE = 128;

/** openat2 resolve flags for every path inside a layer. */
const RESOLVE_LAYER = RESOLVE.BENEATH | RESOLVE.NO_SYMLINKS | RESOLVE.NO_MAGICLINKS | RESOLVE.NO_XDEV;

export const OPAQUE_XATTR = cstr(OPAQUE_XATTR_NAME);
const PROC_FD = '/proc/self/fd/';

/** The layers of one union and the per-thread scratch buffers to reach into them. */
export class Layers {
  /** The statx result of the last stat call. */
  readonly stx = Buffer.alloc(256);
  private readonly pathBuf = Buffer.alloc(8192);
  private readonly procBuf = Buffer.alloc(4096 + 64);
  private readonly how = Buffer.alloc(24);
  private readonly xbuf = Buffer.alloc(8);
  private readonly cache = new Map<number, { gen: number; fd: number }>();
  private readonly cached = new Set<number>();
  private readonly retired: number[] = [];

  constructor(
    readonly nodes: NodeTable,
    /** Root fds of the layers, top first; 0 is upper in a writable union. */
    readonly fds: readonly number[],
    readonly writable: boolean,
    readonly workFd: number,
    /**
     * For each layer, which of the union's filesystems holds it (0 for the first): inode
     * numbers of the others get that index in their high bits, so they never collide.
     */
    private readonly devIndex: readonly number[],
  ) {}

  get count(): number {
    return this.fds.length;
  }

  /**
   * Opens node `i`'s folder in `layer` (O_PATH unless `flags` says otherwise). Returns the fd
   * or -errno: ENOENT or ENOTDIR when the layer has no folder there. O_PATH fds come from a
   * per-thread cache: a folder's fd follows it through renames, and a node that is removed or
   * whose slot is reused no longer matches its entry. close() leaves cached fds open.
   */
  openDir(layer: number, i: number, flags = O_PATH): number {
    if (flags !== O_PATH) return this.openPath(layer, i, flags);
    const key = i * 1024 + layer;
    const gen = this.nodes.get(i, N.GEN);
    const hit = this.cache.get(key);
    if (hit) {
      this.cache.delete(key);
      if (hit.gen === gen && this.nodes.valid(i) && !(this.nodes.flags(i) & NF.DELETED)) {
        this.cache.set(key, hit);
        return hit.fd;
      }
      this.retire(hit.fd);
    }
    const fd = this.openPath(layer, i, O_PATH);
    if (fd < 0) return fd;
    this.cache.set(key, { gen, fd });
    this.cached.add(fd);
    if (this.cache.size > DIR_CACHE) {
      const [oldest, e] = this.cache.entries().next().value as [number, { fd: number }];
      this.cache.delete(oldest);
      this.retire(e.fd);
    }
    return fd;
  }

  private openPath(layer: number, i: number, flags: number): number {
    const n = this.nodes.path(i, this.pathBuf);
    if (n < 0) return -ENAMETOOLONG;
    return rawOpenat2(
      this.fds[layer],
      this.pathBuf,
      flags | O_DIRECTORY | O_CLOEXEC,
      0,
      RESOLVE_LAYER,
      this.how,
    );
  }

  /** A cached fd leaving the cache is closed after the request (it may still be in use). */
  private retire(fd: number): void {
    this.cached.delete(fd);
    this.retired.push(fd);
  }

  /** Called after each request: closes the fds that left the cache meanwhile. */
  endRequest(): void {
    for (const fd of this.retired) rawClose(fd);
    this.retired.length = 0;
  }

  /** Opens `name` in the folder `dirfd` without following a symlink, or -errno. */
  openAt(dirfd: number, name: Buffer, flags: number, mode = 0): number {
    return rawOpenat2(dirfd, name, flags | O_NOFOLLOW | O_CLOEXEC, mode, RESOLVE_LAYER, this.how);
  }

  /** lstat of `name` (NUL-terminated) in `dirfd` into `stx`; 0 or -errno. */
  stat(dirfd: number, name: Buffer): number {
    return rawStatx(dirfd, name, AT_SYMLINK_NOFOLLOW, this.stx);
  }

  /** fstat of an fd into `stx`. */
  fstat(fd: number): number {
    return rawStatx(fd, EMPTY_NAME, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, this.stx);
  }

  mode(): number {
    return this.stx.readUInt16LE(STX.mode);
  }

  /** The last stat was of a whiteout (a character device 0/0). */
  isWhiteout(): boolean {
    return (
      (this.mode() & S_IFMT) === S_IFCHR &&
      this.stx.readUInt32LE(STX.rdevMajor) === 0 &&
      this.stx.readUInt32LE(STX.rdevMinor) === 0
    );
  }

  /** The inode number to report for the entry just stat'ed in `layer`. */
  ino(layer: number): number {
    return this.devMixed(Number(this.stx.readBigUInt64LE(STX.ino)), layer);
  }

  /** A layer's inode number as the union reports it. */
  devMixed(ino: number, layer: number): number {
    const d = this.devIndex[layer];
    return d === 0 ? ino : ino + d * 2 ** 44;
  }

  /** A path through /proc/self/fd that reaches `name` in `dirfd` without following it. */
  procPath(dirfd: number, name: Buffer | null): Buffer {
    let p = this.procBuf.write(PROC_FD, 0, 'latin1');
    p += this.procBuf.write(String(dirfd), p, 'latin1');
    if (name) {
      this.procBuf[p++] = 0x2f;
      const len = name[name.length - 1] === 0 ? name.length - 1 : name.length;
      name.copy(this.procBuf, p, 0, len);
      p += len;
    }
    this.procBuf[p] = 0;
    return this.procBuf;
  }

  /** The folder `name` in `dirfd` carries overlayfs's opaque marker. */
  isOpaque(dirfd: number, name: Buffer): boolean {
    const n = rawLgetxattr(this.procPath(dirfd, name), OPAQUE_XATTR, this.xbuf);
    return n === 1 && this.xbuf[0] === 0x79; // "y"
  }

  /** The node's path (NUL-terminated) in the shared scratch buffer; valid until the next call. */
  pathOf(i: number): Buffer | null {
    return this.nodes.path(i, this.pathBuf) < 0 ? null : this.pathBuf;
  }

  /** Closes an fd this class opened, unless it is cached; negative values (errors) are ignored. */
  close(fd: number): void {
    if (fd >= 0 && !this.cached.has(fd)) rawClose(fd);
  }

  /** The layer range of node `i`'s folder, top and bottom. */
  range(i: number): [number, number] {
    return [this.nodes.get(i, N.TOP), this.nodes.get(i, N.BOTTOM)];
  }
}

export const EMPTY_NAME = Buffer.from([0]);

/** One entry read from a layer's folder. */
export interface RawEntry {
  name: Buffer;
  ino: number;
  type: number;
}

export const DT_DIR = 4;
export const DT_CHR = 2;

const direntBuf = Buffer.alloc(64 * 1024);

/** Every entry of the open folder `fd` (O_RDONLY), "." and ".." left out. */
export function readEntries(fd: number, each: (name: Buffer, ino: number, type: number) => void): number {
  for (;;) {
    const n = rawGetdents(fd, direntBuf);
    if (n < 0) return n;
    if (n === 0) return 0;
    for (let p = 0; p < n; ) {
      const reclen = direntBuf.readUInt16LE(p + 16);
      const type = direntBuf[p + 18];
      let end = direntBuf.indexOf(0, p + 19);
      if (end < 0 || end > p + reclen) end = p + reclen;
      const nameLen = end - (p + 19);
      const isDot =
        (nameLen === 1 && direntBuf[p + 19] === 0x2e) ||
        (nameLen === 2 && direntBuf[p + 19] === 0x2e && direntBuf[p + 20] === 0x2e);
      if (!isDot) {
        each(Buffer.from(direntBuf.subarray(p + 19, end)), Number(direntBuf.readBigUInt64LE(p)), type);
      }
      p += reclen;
    }
  }
}

/** A NUL-terminated copy of a name from a request, for the *at calls. */
export function z(name: Buffer): Buffer {
  return cstr(name);
}

export { rawClose };
