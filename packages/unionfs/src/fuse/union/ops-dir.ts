// Operations that change a folder: making entries (in upper, over a whiteout when one is
// there), removing them (leaving a whiteout when a lower layer has the name) and renaming
// them with overlayfs's rules for redirect_dir=off.
import {
  cstr,
  rawClose,
  rawFchmod,
  rawFchownat,
  rawLgetxattr,
  rawLinkat,
  rawMkdirat,
  rawMknodat,
  rawRenameat2,
  rawSymlinkat,
  rawUnlinkat,
  STX,
} from '@corral/sys';
import type { Reply, Request } from '../codec.js';
import {
  copyUp,
  createOverWhiteout,
  makedev,
  makeWhiteout,
  RENAME_EXCHANGE,
  RENAME_NOREPLACE,
  RENAME_WHITEOUT,
  removeTree,
  replaceWithWhiteout,
  setOpaque,
  tmpName,
} from './copyup.js';
import {
  AT_REMOVEDIR,
  AT_SYMLINK_NOFOLLOW,
  EEXIST,
  EINVAL,
  EISDIR,
  ENOENT,
  ENOTDIR,
  ENOTEMPTY,
  EROFS,
  ESTALE,
  EXDEV,
  O_DIRECTORY,
  O_RDONLY,
  readEntries,
  S_IFDIR,
  S_IFMT,
} from './layers.js';
import { listMerged, lowerPositive } from './lookup.js';
import { N, NF } from './nodes.js';
import type { Op } from './ops-entry.js';
import type { Union } from './union.js';

const S_ISGID = 0o2000;

/** Where a new entry goes: the upper folder, and who owns what is made there. */
export interface Target {
  upperDir: number;
  uid: number;
  gid: number;
  /** The caller's umask, or 0 where the folder has a default ACL (which then rules). */
  umask: number;
}

const ACL_DEFAULT = cstr('system.posix_acl_default');
/** "FD/." reaches the folder itself (the l*xattr calls do not follow the FD link). */
const DOT_Z = cstr('.');

/**
 * Gets the upper folder of `parent` ready for a new entry: copies the folder up. Owner of the
 * new entry: the caller, with the folder's group where the folder is set-group-ID (for root,
 * the upper filesystem does that itself).
 */
export function prepareCreate(u: Union, req: Request, parent: number, umask = 0): Target | number {
  if (u.U < 0) return -EROFS;
  if (u.nodes.flags(parent) & NF.DELETED) return -ENOENT;
  if (!u.nodes.isDir(parent)) return -ENOTDIR;
  const r = copyUp(u, parent);
  if (r < 0) return r;
  const upperDir = u.L.openDir(0, parent);
  if (upperDir < 0) return upperDir;
  let gid = req.gid;
  if ((req.uid !== 0 || req.gid !== 0) && u.L.fstat(upperDir) === 0 && u.L.mode() & S_ISGID)
    gid = u.L.stx.readUInt32LE(STX.gid);
  // With POSIX ACLs the kernel leaves the umask to the filesystem (FUSE_DONT_MASK): it
  // applies unless the folder has a default ACL, which the upper filesystem gives the entry.
  if (umask && rawLgetxattr(u.L.procPath(upperDir, DOT_Z), ACL_DEFAULT, null) > 0) umask = 0;
  return { upperDir, uid: req.uid, gid, umask };
}

/**
 * Makes an entry at `name` with `make`, owned as `t` says: in place, or, where upper holds a
 * whiteout at the name (the name was deleted), over that whiteout. EEXIST otherwise.
 */
export function createEntry(
  u: Union,
  t: Target,
  name: Buffer,
  isDir: boolean,
  make: (dirfd: number, n: Buffer, umask: number) => number,
): number {
  const made = (dirfd: number, n: Buffer) => {
    let r = make(dirfd, n, t.umask);
    if (r < 0 || (t.uid === 0 && t.gid === 0)) return r;
    r = rawFchownat(dirfd, n, t.uid, t.gid, AT_SYMLINK_NOFOLLOW);
    if (r < 0) rawUnlinkat(dirfd, n, isDir ? AT_REMOVEDIR : 0);
    return r;
  };
  const r = made(t.upperDir, name);
  if (r !== -EEXIST) return r;
  if (u.L.stat(t.upperDir, name) === 0 && u.L.isWhiteout())
    return createOverWhiteout(u, t.upperDir, name, isDir, made);
  return r;
}

/** Registers the new upper entry `name` of `parent` as a node and replies its entry. */
function replyNew(u: Union, out: Reply, parent: number, t: Target, name: Buffer, isDir: boolean): number {
  const r = u.L.stat(t.upperDir, name);
  if (r < 0) return -r;
  u.L.stx.copy(u.topStx);
  const bare = name.subarray(0, name.length - 1);
  const old = u.nodes.find(parent, bare);
  if (old) u.nodes.detach(old);
  const i = u.nodes.insert(parent, bare, (isDir ? NF.DIR : 0) | NF.CLEAN, 0, 0, u.L.ino(0));
  u.replyEntry(out, i);
  return 0;
}

/** Runs a create-type operation: resolve the parent, prepare, make, reply. */
function making(
  u: Union,
  req: Request,
  out: Reply,
  nameAt: number,
  isDir: boolean,
  make: (dirfd: number, n: Buffer, umask: number) => number,
  umaskAt = -1,
): number {
  const parent = u.node(req.nodeid);
  if (!parent) return ESTALE;
  const name = req.cname(nameAt);
  const t = prepareCreate(u, req, parent, umaskAt < 0 ? 0 : req.u32(umaskAt) & 0o777);
  if (typeof t === 'number') return -t;
  try {
    const r = createEntry(u, t, name, isDir, make);
    if (r < 0) return -r;
    return replyNew(u, out, parent, t, name, isDir);
  } finally {
    u.L.close(t.upperDir);
  }
}

export const mkdir: Op = (u, req, out) => {
  const mode = req.u32(0) & 0o7777;
  return making(u, req, out, 8, true, (d, n, umask) => rawMkdirat(d, n, mode & ~umask), 4);
};

export const mknod: Op = (u, req, out) => {
  const mode = req.u32(0);
  const rdev = req.u32(4);
  const dev = makedev((rdev & 0xfff00) >>> 8, (rdev & 0xff) | ((rdev >>> 12) & 0xfff00));
  // Set-user-ID and set-group-ID bits are kept through the chown that follows.
  return making(u, req, out, 16, false, (d, n, umask) => rawMknodat(d, n, mode & ~umask, dev), 8);
};

export const symlink: Op = (u, req, out) => {
  const nameEnd = req.after(0);
  const target = Buffer.from(req.cname(nameEnd));
  return making(u, req, out, 0, false, (d, n) => rawSymlinkat(target, d, n));
};

export const link: Op = (u, req, out) => {
  const parent = u.node(req.nodeid);
  const src = u.node(req.u64(0));
  if (!parent || !src) return ESTALE;
  if (u.nodes.isDir(src)) return EISDIR;
  if (u.nodes.flags(src) & NF.DELETED) return ENOENT;
  const tmp = u.tmpFd(src);
  if (tmp < -1) return -tmp;
  if (tmp >= 0) return linkNameless(u, req, out, parent, src, tmp);
  let r = copyUp(u, src);
  if (r < 0) return -r;
  const name = req.cname(8);
  const t = prepareCreate(u, req, parent);
  if (typeof t === 'number') return -t;
  const srcDir = u.L.openDir(0, u.nodes.get(src, N.PARENT));
  try {
    if (srcDir < 0) return -srcDir;
    const srcName = Buffer.from(u.nameOf(src));
    // A link keeps its inode's owner: made as root, never chowned.
    const linkTo = (d: number, n: Buffer) => rawLinkat(srcDir, srcName, d, n, 0);
    r = createEntry(u, { ...t, uid: 0, gid: 0 }, name, false, linkTo);
    if (r < 0) return -r;
    r = u.L.stat(t.upperDir, name);
    if (r < 0) return -r;
    u.L.stx.copy(u.topStx);
    const bare = name.subarray(0, name.length - 1);
    const old = u.nodes.find(parent, bare);
    if (old) u.nodes.detach(old);
    // The same inode under a second name: the same node for the kernel (the reply carries
    // the node's id and its new link count).
    const uino = u.L.ino(0);
    if (!u.nodes.uino(src) && !u.nodes.links.get(uino)) u.nodes.hashLinks(src, uino);
    const i =
      u.nodes.links.get(uino) === src
        ? u.nodes.insertAlias(parent, bare, src)
        : u.nodes.insert(parent, bare, 0, 0, 0, u.nodes.ino(src));
    u.replyEntry(out, i);
    return 0;
  } finally {
    if (srcDir >= 0) u.L.close(srcDir);
    u.L.close(t.upperDir);
  }
};

/**
 * LINK of a nameless file (O_TMPFILE, linkat with AT_EMPTY_PATH): linked in from its own fd;
 * the node then has this name, like any other.
 */
function linkNameless(u: Union, req: Request, out: Reply, parent: number, src: number, tmp: number): number {
  const name = req.cname(8);
  const t = prepareCreate(u, req, parent);
  if (typeof t === 'number') return -t;
  try {
    const linkIn = (d: number, n: Buffer) => rawLinkat(tmp, EMPTY_Z, d, n, AT_EMPTY_PATH);
    let r = createEntry(u, { ...t, uid: 0, gid: 0 }, name, false, linkIn);
    if (r >= 0) r = u.L.stat(t.upperDir, name);
    if (r < 0) return -r;
    u.L.stx.copy(u.topStx);
    const bare = name.subarray(0, name.length - 1);
    const old = u.nodes.find(parent, bare);
    if (old) u.nodes.detach(old);
    u.nodes.move(src, parent, bare);
    u.nodes.set(src, N.FLAGS, u.nodes.flags(src) & ~NF.TMPFILE);
    u.nodes.set(src, N.TMPFD, 0);
    rawClose(tmp);
    u.replyEntry(out, src);
    return 0;
  } finally {
    u.L.close(t.upperDir);
  }
}
const EMPTY_Z = Buffer.from([0]);
const AT_EMPTY_PATH = 0x1000;

/** Removes `name` from folder node `parent`: UNLINK or RMDIR. */
function remove(u: Union, req: Request, wantDir: boolean): number {
  const parent = u.node(req.nodeid);
  if (!parent) return ESTALE;
  if (u.nodes.flags(parent) & NF.DELETED) return ENOENT;
  const name = req.cname(0);
  const dirs = u.dirs(parent);
  try {
    const i = u.lookupNode(dirs, name);
    if (i < 0) return -i;
    const uino = u.foundUpperIno();
    const nlink = u.topStx.readUInt32LE(STX.nlink);
    const isDir = u.nodes.isDir(i);
    if (wantDir && !isDir) return ENOTDIR;
    if (!wantDir && isDir) return EISDIR;
    if (u.U < 0) return EROFS;
    if (isDir) {
      const list = listMerged(u.L, u.nodes, i);
      if (typeof list === 'number') return -list;
      if (list.length) return ENOTEMPTY;
    }
    let r = copyUp(u, parent);
    if (r < 0) return -r;
    dirs.reset(0);
    const upperDir = dirs.get(0);
    if (upperDir < 0) return EIO_;
    if (u.nodes.get(i, N.TOP) === 0) {
      if (lowerPositive(u.L, u.nodes, dirs, name)) r = replaceWithWhiteout(u, upperDir, name, isDir);
      else if (isDir) {
        r = rawUnlinkat(upperDir, name, AT_REMOVEDIR);
        // Whiteouts left inside (the folder looked empty): move it aside and clear it.
        if (r === -ENOTEMPTY) {
          const tmp = tmpName();
          r = rawRenameat2(upperDir, name, u.L.workFd, tmp, 0);
          if (r >= 0) r = removeTree(u, u.L.workFd, tmp);
        }
      } else r = rawUnlinkat(upperDir, name, 0);
    } else r = makeWhiteout(upperDir, name);
    if (r < 0) return -r;
    const node = u.nodes.kernelNode(i);
    u.nodes.detach(i);
    if (uino) u.upperGone(uino, nlink, isDir, node);
    return 0;
  } finally {
    dirs.close();
  }
}
const EIO_ = 5;

export const unlink: Op = (u, req) => remove(u, req, false);
export const rmdir: Op = (u, req) => remove(u, req, true);

/** A folder that exists in upper only (new, or opaque): the only kind that can move without redirects. */
const pureUpper = (u: Union, i: number) => u.nodes.get(i, N.TOP) === 0 && u.nodes.get(i, N.BOTTOM) === 0;
/** A folder node that merges upper with lower folders. */
const merged = (u: Union, i: number) => u.nodes.get(i, N.BOTTOM) > u.nodes.get(i, N.TOP);

/** Removes the whiteouts an upper folder holds (it is about to be replaced). */
function clearWhiteouts(u: Union, upperParent: number, name: Buffer): number {
  const fd = u.L.openAt(upperParent, name, O_RDONLY | O_DIRECTORY);
  if (fd < 0) return fd;
  const inner: Buffer[] = [];
  const r = readEntries(fd, (n) => inner.push(Buffer.concat([n, Buffer.from([0])])));
  for (const n of inner) rawUnlinkat(fd, n, 0);
  u.L.close(fd);
  return r;
}

function rename(u: Union, req: Request, newdirId: number, flags: number, namesAt: number): number {
  const olddir = u.node(req.nodeid);
  const newdir = u.node(newdirId);
  if (!olddir || !newdir) return ESTALE;
  if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE) || (flags & RENAME_NOREPLACE && flags & RENAME_EXCHANGE))
    return EINVAL;
  const exchange = (flags & RENAME_EXCHANGE) !== 0;
  const oldname = Buffer.from(req.cname(namesAt));
  const newname = Buffer.from(req.cname(req.after(namesAt)));
  if (u.nodes.flags(olddir) & NF.DELETED || u.nodes.flags(newdir) & NF.DELETED) return ENOENT;
  const oldDirs = u.dirs(olddir);
  const newDirs = u.dirs(newdir);
  try {
    const o = u.lookupNode(oldDirs, oldname);
    if (o < 0) return -o;
    let n = u.lookupNode(newDirs, newname);
    if (n < 0 && n !== -ENOENT) return -n;
    if (n < 0) n = 0;
    const nUino = n ? u.foundUpperIno() : 0;
    const nLinks = u.topStx.readUInt32LE(STX.nlink);
    if (exchange && !n) return ENOENT;
    if (flags & RENAME_NOREPLACE && n) return EEXIST;
    if (u.U < 0) return EROFS;
    // Two names of one inode: nothing to do (the kernel does not even ask).
    if (n && u.nodes.kernelNode(o) === u.nodes.kernelNode(n)) return 0;
    const oDir = u.nodes.isDir(o);
    const nDir = n !== 0 && u.nodes.isDir(n);
    if (oDir && !pureUpper(u, o)) return EXDEV;
    if (exchange && nDir && !pureUpper(u, n)) return EXDEV;
    if (!exchange && n) {
      if (nDir && !oDir) return EISDIR;
      if (!nDir && oDir) return ENOTDIR;
      if (nDir) {
        const list = listMerged(u.L, u.nodes, n);
        if (typeof list === 'number') return -list;
        if (list.length) return ENOTEMPTY;
      }
    }
    let r = copyUp(u, olddir);
    if (r >= 0) r = copyUp(u, newdir);
    if (r >= 0) r = copyUp(u, o);
    if (r >= 0 && exchange) r = copyUp(u, n);
    if (r < 0) return -r;
    oldDirs.reset(0);
    newDirs.reset(0);
    const oldUpper = oldDirs.get(0);
    const newUpper = newDirs.get(0);
    if (oldUpper < 0 || newUpper < 0) return EIO_;
    const oldLowerPositive = !exchange && lowerPositive(u.L, u.nodes, oldDirs, oldname);
    const s = u.L.stat(newUpper, newname);
    const newWhiteout = !n && s === 0 && u.L.isWhiteout();
    // A folder moved into a merged folder must not merge with what the lowers have there.
    if (oDir && !u.L.isOpaque(oldUpper, oldname) && merged(u, newdir)) {
      r = setOpaque(oldUpper, oldname);
      if (r < 0) return -r;
    }
    if (exchange && nDir && !u.L.isOpaque(newUpper, newname) && merged(u, olddir)) {
      r = setOpaque(newUpper, newname);
      if (r < 0) return -r;
    }
    if (!exchange && nDir && u.nodes.get(n, N.TOP) === 0) {
      r = clearWhiteouts(u, newUpper, newname);
      if (r < 0) return -r;
    }
    let how = exchange ? RENAME_EXCHANGE : 0;
    let dropWhiteout = false;
    if (!exchange) {
      if (oldLowerPositive) how = newWhiteout ? RENAME_EXCHANGE : RENAME_WHITEOUT;
      else if (oDir && newWhiteout) {
        how = RENAME_EXCHANGE;
        dropWhiteout = true;
      }
    }
    r = rawRenameat2(oldUpper, oldname, newUpper, newname, how);
    if (r < 0) return -r;
    if (dropWhiteout) rawUnlinkat(oldUpper, oldname, 0);
    if (n && !exchange) {
      const node = u.nodes.kernelNode(n);
      u.nodes.detach(n);
      if (nUino) u.upperGone(nUino, nLinks, nDir, node);
    }
    u.nodes.move(o, newdir, newname.subarray(0, newname.length - 1));
    if (exchange) u.nodes.move(n, olddir, oldname.subarray(0, oldname.length - 1));
    return 0;
  } finally {
    oldDirs.close();
    newDirs.close();
  }
}

export const rename1: Op = (u, req) => rename(u, req, req.u64(0), 0, 8);
export const rename2: Op = (u, req) => rename(u, req, req.u64(0), req.u32(8), 16);

export { rawFchmod, S_IFDIR, S_IFMT };
