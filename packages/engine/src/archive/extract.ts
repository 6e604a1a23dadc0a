// Extracting a tar into a tree that someone else may be changing (a running container's root,
// while `docker cp` writes into it). Every entry's folder is resolved inside the root
// (openInRoot: symlinks, absolute ones too, and `..` stay beneath it), and the entry is made
// relative to that folder's fd with calls that never follow its last component (O_NOFOLLOW,
// O_EXCL, AT_SYMLINK_NOFOLLOW). So no symlink, whether the container made it or an earlier
// entry of the tar did, can lead a write to the host; names that climb out with `..` are refused.
import { fchmodSync, fchownSync, fstatSync, futimesSync, write as writeCb } from 'node:fs';
import { posix } from 'node:path';
import type { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { type TarHeader, tarExtract } from '@corral/image';
import {
  AT,
  close,
  cstr,
  DirFd,
  EMPTY,
  fdPath,
  isErrno,
  makedev,
  mkdirat,
  mknodat,
  O,
  openat,
  openInRoot,
  rawFchmodat2,
  rawFchownat,
  rawLinkat,
  rawUtimensat,
  S_IF,
  SyscallError,
  symlinkat,
  unlinkat,
} from '@corral/sys';
import { EngineError } from '../errors.js';
import { rebaseName } from './paths.js';

const write = promisify(writeCb);

export interface ExtractOptions {
  /** Keep the owners the tar names (docker cp -a); otherwise everything is root's. */
  keepOwners?: boolean;
  /** Refuse to replace a folder with a non-folder or the reverse (what docker cp asks). */
  noOverwriteDirNonDir?: boolean;
  /** Renames the tar's top entry (`from`, and what is under it) to `to`. */
  rename?: { from: string; to: string };
}

/** What an extraction wrote, for `Successfully copied`. */
export interface ExtractResult {
  entries: number;
  bytes: number;
}

/**
 * Extracts `input` into the folder `destfd` holds. That folder is the root of every lookup:
 * the tar's own symlinks, absolute or with `..`, resolve beneath it, as in a chroot there.
 */
export async function extractTar(
  input: Readable,
  destfd: number,
  options: ExtractOptions = {},
): Promise<ExtractResult> {
  const rootfd = destfd;
  const dest = '/';
  const extract = tarExtract();
  input.on('error', (e) => extract.destroy(e));
  input.pipe(extract as unknown as NodeJS.WritableStream);
  const dirTimes: [string, Date][] = [];
  const result: ExtractResult = { entries: 0, bytes: 0 };
  try {
    await extractEntries(extract, rootfd, dest, options, dirTimes, result);
  } catch (e) {
    // What is not ours nor the kernel's came from reading the stream: a tar that does not parse.
    if (e instanceof EngineError || e instanceof SyscallError) throw e;
    throw new EngineError('InvalidArgument', `the tar stream is not valid: ${(e as Error).message}`);
  }
  // Folder times last: writing their entries changed them.
  for (const [path, mtime] of dirTimes.reverse()) {
    try {
      const fd = openInRoot(rootfd, path, O.RDONLY | O.DIRECTORY | O.NOFOLLOW);
      try {
        futimesSync(fd, mtime, mtime);
      } finally {
        close(fd);
      }
    } catch {
      // changed meanwhile: its time is not worth failing the copy
    }
  }
  return result;
}

async function extractEntries(
  extract: ReturnType<typeof tarExtract>,
  rootfd: number,
  dest: string,
  options: ExtractOptions,
  dirTimes: [string, Date][],
  result: ExtractResult,
): Promise<void> {
  for await (const entry of extract) {
    const h = entry.header;
    const name = options.rename ? rebaseName(h.name, options.rename.from, options.rename.to) : h.name;
    const parts = entryParts(name);
    if (parts.length === 0) {
      entry.resume(); // the destination folder itself: it exists and keeps its own attributes
      continue;
    }
    const base = parts.pop()!;
    const parentPath = posix.join(dest, ...parts);
    try {
      const pfd = openInRoot(rootfd, parentPath, O.PATH | O.DIRECTORY, { create: 'dir' });
      try {
        result.bytes += await writeEntry(
          pfd,
          base,
          h,
          entry as unknown as Readable,
          options,
          rootfd,
          dest,
          name,
        );
        if (h.type === 'directory') dirTimes.push([posix.join(parentPath, base), h.mtime]);
        result.entries++;
      } finally {
        close(pfd);
      }
    } catch (e) {
      if (e instanceof SyscallError)
        throw new EngineError('InvalidArgument', `cannot extract "${name}": ${e.code}: ${e.message}`);
      throw e;
    }
  }
}

/** A tar name's components below the destination; `..` above it is refused, as Docker does. */
export function entryParts(name: string): string[] {
  const out: string[] = [];
  for (const part of name.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (!out.length)
        throw new EngineError(
          'InvalidArgument',
          `invalid tar entry "${name}": it climbs out of the destination`,
        );
      out.pop();
    } else out.push(part);
  }
  return out;
}

type Kind = 'dir' | 'other' | null;

/** What is at `base` in the folder now, never following it. */
function kindAt(pfd: number, base: string): Kind {
  let fd: number;
  try {
    fd = openat(pfd, base, O.PATH | O.NOFOLLOW | O.CLOEXEC);
  } catch (e) {
    if (isErrno(e, 'ENOENT')) return null;
    throw e;
  }
  try {
    return openedIsDir(fd) ? 'dir' : 'other';
  } finally {
    close(fd);
  }
}

function openedIsDir(fd: number): boolean {
  return fstatSync(fd).isDirectory();
}

async function writeEntry(
  pfd: number,
  base: string,
  h: TarHeader,
  data: Readable,
  options: ExtractOptions,
  rootfd: number,
  dest: string,
  name: string,
): Promise<number> {
  const isDir = h.type === 'directory';
  const existing = kindAt(pfd, base);
  if (existing && !(existing === 'dir' && isDir)) {
    if (options.noOverwriteDirNonDir && existing === 'dir')
      throw new EngineError(
        'InvalidArgument',
        `cannot overwrite directory "${base}" with non-directory "${name}"`,
      );
    if (options.noOverwriteDirNonDir && isDir)
      throw new EngineError(
        'InvalidArgument',
        `cannot overwrite non-directory "${base}" with directory "${name}"`,
      );
    removeAt(pfd, base, existing === 'dir');
  }
  const uid = options.keepOwners ? h.uid : 0;
  const gid = options.keepOwners ? h.gid : 0;
  const mode = h.mode & 0o7777;
  switch (h.type) {
    case 'file':
    case 'contiguous-file': {
      // O_EXCL: a symlink put here since the check is not followed, the open fails.
      const fd = openat(pfd, base, O.WRONLY | O.CREAT | O.EXCL | O.NOFOLLOW | O.CLOEXEC, 0o600);
      let bytes = 0;
      try {
        for await (const chunk of data as AsyncIterable<Buffer>) {
          for (let off = 0; off < chunk.length; )
            off += (await write(fd, chunk, off, chunk.length - off)).bytesWritten;
          bytes += chunk.length;
        }
        fchownSync(fd, uid, gid);
        fchmodSync(fd, mode); // after chown, which clears set-id bits
        futimesSync(fd, h.mtime, h.mtime);
      } finally {
        close(fd);
      }
      return bytes;
    }
    case 'directory': {
      if (!existing) mkdirat(pfd, base, 0o700);
      const fd = openat(pfd, base, O.RDONLY | O.DIRECTORY | O.NOFOLLOW | O.CLOEXEC);
      try {
        fchownSync(fd, uid, gid);
        fchmodSync(fd, mode);
      } finally {
        close(fd);
      }
      break;
    }
    case 'symlink':
      symlinkat(h.linkname, pfd, base);
      break;
    case 'link': {
      // Docker: a hard link's target is a path of the tar, beneath the destination.
      const target = posix.join(dest, ...entryParts(h.linkname));
      const src = openInRoot(rootfd, target, O.PATH | O.NOFOLLOW);
      try {
        const r = rawLinkat(src, EMPTY, pfd, cstr(base), AT.EMPTY_PATH);
        if (r < 0) throw new SyscallError('linkat', -r, [h.linkname, name]);
      } finally {
        close(src);
      }
      data.resume();
      return 0; // owner and mode are the target's
    }
    case 'fifo':
      mknodat(pfd, base, S_IF.FIFO | 0o600);
      break;
    case 'character-device':
    case 'block-device':
      mknodat(
        pfd,
        base,
        (h.type === 'block-device' ? S_IF.BLK : S_IF.CHR) | 0o600,
        makedev(h.devmajor, h.devminor),
      );
      break;
    default:
      data.resume(); // kinds a copy cannot make here are left out
      return 0;
  }
  data.resume();
  if (!isDir) setAttrs(pfd, base, uid, gid, h.type === 'symlink' ? null : mode, h.mtime);
  return 0;
}

/** Owner, mode and times of `base` itself, never following it (fchmodat2 refuses a symlink). */
function setAttrs(pfd: number, base: string, uid: number, gid: number, mode: number | null, mtime: Date) {
  const name = cstr(base);
  let r = rawFchownat(pfd, name, uid, gid, AT.SYMLINK_NOFOLLOW);
  if (r < 0) throw new SyscallError('fchownat', -r, [base]);
  if (mode !== null) {
    r = rawFchmodat2(pfd, name, mode, AT.SYMLINK_NOFOLLOW);
    if (r < 0) throw new SyscallError('fchmodat2', -r, [base]);
  }
  const times = Buffer.alloc(32);
  const sec = BigInt(Math.floor(mtime.getTime() / 1000));
  times.writeBigInt64LE(sec, 0);
  times.writeBigInt64LE(sec, 16);
  r = rawUtimensat(pfd, name, times, AT.SYMLINK_NOFOLLOW);
  if (r < 0) throw new SyscallError('utimensat', -r, [base]);
}

/** Removes `base` (a whole folder too), through fds: nothing in it is followed. */
export function removeAt(pfd: number, base: string, isDir: boolean): void {
  if (!isDir) {
    unlinkat(pfd, base, 0);
    return;
  }
  const dirfd = openat(pfd, base, O.RDONLY | O.DIRECTORY | O.NOFOLLOW | O.CLOEXEC);
  const dir = DirFd.open(fdPath(dirfd));
  close(dirfd);
  try {
    for (const child of dir.names()) removeAt(dir.fd, child, dir.lstat(child).isDirectory());
  } finally {
    dir.close();
  }
  unlinkat(pfd, base, AT.REMOVEDIR);
}
