import * as fs from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { lsetxattr, makedev, mknod, S_IF } from '@corral/sys';
import { isOverlayXattr, makeWhiteout, markOpaque, parseOciName } from '@corral/unionfs/whiteout';
import * as tar from 'tar-stream';
import { ImageError } from '../errors.js';
import { HashingStream } from '../store/hashing.js';
import { MAX_ENTRY_NAME_BYTES } from '../store/limits.js';
import { diskFull, isNoSpace, type SpaceGuard } from '../store/space.js';
import { type Compression, Decompress } from './compress.js';
import { DirTimes, writeFileFrom, writeSmallFile } from './write-file.js';

export interface ApplyResult {
  /** sha256 of the uncompressed tar: the layer's diff ID. */
  diffId: string;
  /** Bytes of the uncompressed tar. */
  size: number;
  compression: Compression;
  entries: number;
  /** Entries of kinds a layer folder cannot hold (e.g. sockets, GNU sparse), by name (the first 100). */
  skipped: string[];
}

export interface ApplyOptions {
  /** Checks the filesystem has room before and while files are written (see SpaceGuard). */
  space?: SpaceGuard;
}

/**
 * Memory stays bounded whatever the layer holds (millions of entries with long names):
 * each structure that grows with the entries has a bound, past which it gives way.
 */
/** Paths remembered as made here (a lookup saved each), in characters: past this, lookups are made again. */
const MAX_TRACKED_CHARS = 32 * 1024 * 1024;
/** Resolved parent folders cached, in characters: the cache starts afresh past this. */
const MAX_DIR_CACHE_CHARS = 32 * 1024 * 1024;
const MAX_SKIPPED = 100;
/** What one file or folder takes on disk at least (one block). */
const BLOCK = 4096;

const MAX_SYMLINKS = 255;

function unsafe(name: string, why: string): never {
  throw new ImageError('UNSAFE_PATH', `layer entry "${name}" ${why}; the layer is refused`);
}

/**
 * Splits a tar path into clean components: a leading `/` is dropped (kept inside the
 * layer, as docker does), `.` and empty parts vanish, and `..` that would climb above
 * the layer root is refused.
 */
export function cleanPath(name: string): string[] {
  const out: string[] = [];
  for (const part of name.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (out.length === 0) unsafe(name, 'climbs out of the layer with ".."');
      out.pop();
    } else out.push(part);
  }
  return out;
}

/**
 * Resolves `parts` (the parents of an entry) inside `root` as if `root` were `/`:
 * symlinks are followed but can never lead out (absolute targets restart at the root,
 * `..` stops at it). Missing folders are created. Returns the host path.
 *
 * `cache` remembers resolved parents by their clean tar path; the caller clears it whenever
 * it removes a folder or a symlink (the only changes that can alter a resolution, since
 * every step of a cached one existed). `pending` names paths whose file is still being
 * created: a parent that is one of them must wait (PendingPath).
 */
function resolveParents(
  root: string,
  parts: string[],
  entryName: string,
  cache?: Map<string, string>,
  pending?: Map<string, Promise<void>>,
  made?: Set<string>,
): string {
  const key = parts.join('/');
  const hit = cache?.get(key);
  if (hit !== undefined) return hit;
  const stack: string[] = [];
  const todo = [...parts];
  let links = 0;
  while (todo.length) {
    const part = todo.shift()!;
    if (part === '' || part === '.') continue;
    if (part === '..') {
      stack.pop();
      continue;
    }
    const path = join(root, ...stack, part);
    if (pending?.has(path)) throw new PendingPath(path);
    let st: fs.Stats | undefined;
    try {
      st = fs.lstatSync(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    if (!st) {
      fs.mkdirSync(path, { mode: 0o755 });
      made?.add(path);
      stack.push(part);
    } else if (st.isDirectory()) {
      stack.push(part);
    } else if (st.isSymbolicLink()) {
      if (++links > MAX_SYMLINKS) unsafe(entryName, 'goes through too many symlinks');
      const target = fs.readlinkSync(path);
      if (target.startsWith('/')) stack.length = 0;
      todo.unshift(...target.split('/'));
    } else {
      throw new ImageError(
        'BAD_LAYER',
        `layer entry "${entryName}": "${join(...stack, part)}" is not a folder`,
      );
    }
  }
  const out = join(root, ...stack);
  cache?.set(key, out);
  return out;
}

/** Thrown by resolveParents when a step is a file still being written: wait for it, then retry. */
class PendingPath extends Error {
  constructor(readonly path: string) {
    super(`${path} is being written`);
  }
}

/** PAX records straight from the bytes, so binary xattr values (capabilities) stay intact. */
export function parsePaxRecords(buf: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let off = 0;
  while (off < buf.length) {
    const space = buf.indexOf(0x20, off);
    if (space < 0) break;
    const len = Number.parseInt(buf.toString('ascii', off, space), 10);
    if (!(len > 0) || off + len > buf.length) break;
    const rec = buf.subarray(space + 1, off + len - 1);
    const eq = rec.indexOf(0x3d);
    if (eq > 0) out.set(rec.toString('utf8', 0, eq), Buffer.from(rec.subarray(eq + 1)));
    off += len;
  }
  return out;
}

type Header = tar.Header;

/** The extended attributes an entry carries (SCHILY.xattr.*), minus overlay's own. */
function entryXattrs(header: Header, raw: Map<string, Buffer> | undefined): [string, Buffer][] {
  const out: [string, Buffer][] = [];
  if (raw) {
    for (const [k, v] of raw) if (k.startsWith('SCHILY.xattr.')) out.push([k.slice(13), v]);
  } else if (header.pax) {
    for (const [k, v] of Object.entries(header.pax as Record<string, string>)) {
      if (k.startsWith('SCHILY.xattr.')) out.push([k.slice(13), Buffer.from(v, 'utf8')]);
    }
  }
  // overlayfs' own xattrs would let a layer redirect lookups: never taken from a tar.
  return out.filter(([name]) => !isOverlayXattr(name));
}

/**
 * Applies one layer tar (plain, gzip or zstd) to `dest`, in the overlay lower/upper
 * format: OCI whiteouts become 0/0 character devices, opaque markers the
 * trusted.overlay.opaque xattr. Nothing is ever written outside `dest`.
 */
export async function applyLayer(
  source: Readable | AsyncIterable<Uint8Array>,
  dest: string,
  options: ApplyOptions = {},
): Promise<ApplyResult> {
  const { space } = options;
  space?.ensure(0);
  const root = fs.realpathSync(dest);
  const hasher = new HashingStream('sha256');
  const decompress = new Decompress();
  const extract = tar.extract();
  // tar-stream decodes PAX values as UTF-8, which mangles binary xattrs: keep the raw bytes.
  let rawPax: Buffer | undefined;
  const ex = extract as unknown as { _decodeLongHeader?: (buf: Buffer) => void; _header?: { type?: string } };
  const decodeLong = ex._decodeLongHeader;
  if (typeof decodeLong === 'function') {
    ex._decodeLongHeader = function (this: typeof ex, buf: Buffer) {
      if (this._header?.type === 'pax-header') rawPax = Buffer.from(buf);
      return decodeLong.call(this, buf);
    };
  }
  const dirTimes = new DirTimes();
  const skipped: string[] = [];
  let skippedMore = 0;
  let entries = 0;

  // Regular files are created and written on the libuv pool while the tar stream moves on
  // (small files whole from memory, with owner, mode and times set through the open file),
  // so file creation, the bulk of the cost, overlaps parsing, hashing and other files.
  // Order stays as in the tar wherever it matters: an entry at a path waits for the write
  // under way there, removing a folder waits for every write, a hard link for its target.
  const pending = new Map<string, Promise<void>>();
  let pendingBytes = 0;
  let writeError: unknown;
  const dirCache = new Map<string, string>();
  let cacheChars = 0;
  const clearCache = () => {
    dirCache.clear();
    cacheChars = 0;
  };
  // When the folder starts empty, everything in it is made here: a path not in `made` does
  // not exist, and is not looked up (a lookup would wait on the folder's lock while the
  // pool creates files in it).
  let tracked = fs.readdirSync(root).length === 0;
  const made = new Set<string>();
  let madeChars = 0;
  const mark = (path: string, count = 1) => {
    if (!tracked) return;
    made.add(path);
    madeChars += path.length * count;
    if (madeChars > MAX_TRACKED_CHARS) {
      tracked = false;
      made.clear();
    }
  };
  const drain = async (): Promise<void> => {
    while (pending.size) await Promise.all([...pending.values()]);
    if (writeError) throw writeError;
  };
  const waitFor = async (path: string): Promise<void> => {
    const p = pending.get(path);
    if (p) await p;
    if (writeError) throw writeError;
  };
  const background = (path: string, bytes: number, work: Promise<void>): void => {
    pendingBytes += bytes;
    const done: Promise<void> = work.then(
      () => {},
      (e) => {
        writeError ??= e;
      },
    );
    const tracked = done.finally(() => {
      pendingBytes -= bytes;
      if (pending.get(path) === tracked) pending.delete(path);
    });
    pending.set(path, tracked);
  };
  const parentOf = async (parts: string[], name: string): Promise<string> => {
    for (;;) {
      try {
        const [cached, before] = [dirCache.size, made.size];
        const out = resolveParents(root, parts, name, dirCache, pending, tracked ? made : undefined);
        if (dirCache.size > cached) {
          cacheChars += 2 * out.length;
          if (cacheChars > MAX_DIR_CACHE_CHARS) clearCache();
        }
        const newDirs = made.size - before;
        if (newDirs > 0) {
          space?.add(BLOCK * newDirs, newDirs, pendingBytes);
          mark(out, newDirs);
        }
        return out;
      } catch (e) {
        if (!(e instanceof PendingPath)) throw e;
        await waitFor(e.path);
      }
    }
  };
  /** Removes whatever is at `path` (not following symlinks); folders only when `keepDir` is false. */
  const clear = async (path: string, keepDir: boolean): Promise<fs.Stats | undefined> => {
    await waitFor(path);
    if (tracked && !made.has(path)) return undefined;
    let st: fs.Stats;
    try {
      st = fs.lstatSync(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
    if (st.isDirectory()) {
      if (keepDir) return st;
      await drain();
      clearCache();
      fs.rmSync(path, { recursive: true, force: true });
      const inside = `${path}/`;
      for (const p of made) if (p.startsWith(inside)) made.delete(p);
    } else {
      if (st.isSymbolicLink()) clearCache();
      fs.unlinkSync(path);
    }
    made.delete(path);
    return undefined;
  };

  const handle = async (header: Header, stream: Readable): Promise<void> => {
    if (writeError) throw writeError;
    const pax = rawPax ? parsePaxRecords(rawPax) : undefined;
    rawPax = undefined;
    entries++;
    for (const n of [header.name, header.linkname ?? '']) {
      if (Buffer.byteLength(n) > MAX_ENTRY_NAME_BYTES) {
        throw new ImageError(
          'BAD_LAYER',
          `layer entry "${n.slice(0, 64)}...": a name of ${Buffer.byteLength(n)} bytes, longer than the ${MAX_ENTRY_NAME_BYTES} a path may have; the layer is refused`,
        );
      }
    }
    // Every entry takes an inode and at least a block; a file's data is counted before it is written.
    const bytes = header.type === 'file' || header.type === 'contiguous-file' ? (header.size ?? 0) : 0;
    if (space) {
      if (bytes >= SMALL_FILE) space.ensure(bytes + pendingBytes, 1);
      space.add(Math.ceil(bytes / BLOCK) * BLOCK + BLOCK, 1, pendingBytes);
    }
    // tar-stream applies only path, linkpath and size from PAX; ids past the octal field's
    // range and sub-second mtimes come from here.
    if (pax) {
      const num = (k: string) => (pax.has(k) ? Number(pax.get(k)!.toString('ascii')) : Number.NaN);
      if (Number.isSafeInteger(num('uid'))) header.uid = num('uid');
      if (Number.isSafeInteger(num('gid'))) header.gid = num('gid');
      if (Number.isFinite(num('mtime'))) header.mtime = new Date(num('mtime') * 1000);
    }
    const parts = cleanPath(header.name);
    if (parts.length === 0) {
      // The root itself ("./"): its metadata applies to the layer folder.
      if (header.type === 'directory') setMeta(root, header, pax, false, dirTimes);
      stream.resume();
      return;
    }
    const base = parts[parts.length - 1];
    const parent = await parentOf(parts.slice(0, -1), header.name);
    const oci = parseOciName(base);
    if (oci.kind !== 'entry') {
      stream.resume();
      if (oci.kind === 'opaque') {
        markOpaque(parent);
        return;
      }
      if (oci.kind === 'aufs-meta') return;
      const { name } = oci;
      if (!name || name === '.' || name === '..') unsafe(header.name, 'is a whiteout of nothing');
      const path = join(parent, name);
      await clear(path, false);
      makeWhiteout(path);
      mark(path);
      fs.lchownSync(path, header.uid ?? 0, header.gid ?? 0);
      return;
    }
    const path = join(parent, base);
    switch (header.type) {
      case 'directory': {
        const existing = await clear(path, true);
        if (!existing) {
          fs.mkdirSync(path, { mode: 0o700 });
          mark(path);
        }
        setMeta(path, header, pax, false, dirTimes);
        stream.resume();
        return;
      }
      case 'file':
      case 'contiguous-file': {
        await clear(path, false);
        mark(path);
        const xattrs = entryXattrs(header, pax);
        if (xattrs.length === 0 && (header.size ?? 0) <= SMALL_FILE) {
          const chunks: Buffer[] = [];
          for await (const chunk of stream as AsyncIterable<Buffer>) chunks.push(chunk);
          background(path, (header.size ?? 0) + 1024, writeSmallFile(path, header, chunks));
          if (pending.size >= MAX_PENDING_FILES || pendingBytes >= MAX_PENDING_BYTES) {
            await Promise.race(pending.values());
          }
        } else {
          await writeFileFrom(path, header, undefined, stream as AsyncIterable<Buffer>);
          if (xattrs.length) setMeta(path, header, pax, false, dirTimes);
        }
        return;
      }
      case 'symlink':
        stream.resume();
        await clear(path, false);
        fs.symlinkSync(header.linkname ?? '', path);
        mark(path);
        setMeta(path, header, pax, true, dirTimes);
        return;
      case 'link': {
        stream.resume();
        const targetParts = cleanPath(header.linkname ?? '');
        if (targetParts.length === 0) unsafe(header.name, 'is a hard link to the layer root');
        const targetParent = await parentOf(targetParts.slice(0, -1), header.linkname ?? '');
        const target = join(targetParent, targetParts[targetParts.length - 1]);
        await waitFor(target);
        let st: fs.Stats;
        try {
          st = fs.lstatSync(target);
        } catch {
          throw new ImageError(
            'BAD_LAYER',
            `layer entry "${header.name}" is a hard link to "${header.linkname}", which the layer does not hold`,
          );
        }
        if (st.isDirectory()) unsafe(header.name, 'is a hard link to a folder');
        if (target === path) return;
        await clear(path, false);
        fs.linkSync(target, path);
        mark(path);
        return;
      }
      case 'character-device':
      case 'block-device':
      case 'fifo': {
        stream.resume();
        await clear(path, false);
        const kind =
          header.type === 'fifo' ? S_IF.FIFO : header.type === 'block-device' ? S_IF.BLK : S_IF.CHR;
        mknod(path, kind | 0o600, makedev(header.devmajor ?? 0, header.devminor ?? 0));
        mark(path);
        setMeta(path, header, pax, false, dirTimes);
        return;
      }
      default:
        stream.resume();
        if (skipped.length < MAX_SKIPPED) skipped.push(`${header.name} (${header.type})`);
        else skippedMore++;
    }
  };

  extract.on('entry', (header, stream, next) => {
    handle(header, stream as unknown as Readable).then(
      () => next(),
      (e) => {
        // The entry's stream goes down with the extractor: its error is this one, handled here.
        stream.on('error', () => {});
        stream.resume();
        next(e);
      },
    );
  });
  try {
    await pipeline(source as Readable, decompress, hasher, extract as unknown as NodeJS.WritableStream);
    await drain();
  } catch (e) {
    // No write may land after the caller removes the folder.
    while (pending.size) await Promise.all([...pending.values()]);
    if (e instanceof ImageError) throw e;
    // A full disk is no bad layer: say so, and where (the folder being unpacked into).
    if (isNoSpace(e)) throw diskFull(space?.dir ?? dest, "a layer's files", e);
    if ((e as { name?: string }).name === 'SyscallError') throw e;
    throw new ImageError('BAD_LAYER', `cannot read the layer tar: ${(e as Error).message}`, { cause: e });
  }
  dirTimes.apply();
  if (skippedMore) skipped.push(`... and ${skippedMore} more`);
  return {
    diffId: hasher.digest(),
    size: hasher.size,
    compression: decompress.compression ?? 'none',
    entries,
    skipped,
  };
}

/** Files up to this size are read whole and written on the pool while the tar moves on. */
const SMALL_FILE = 1024 * 1024;
/** Bounds on files being written in the background. */
const MAX_PENDING_FILES = 64;
const MAX_PENDING_BYTES = 32 * 1024 * 1024;
/** Owner, then mode (chmod after chown, which clears setuid bits), xattrs, times. */
function setMeta(
  path: string,
  h: Header,
  pax: Map<string, Buffer> | undefined,
  isLink: boolean,
  dirTimes: DirTimes,
): void {
  fs.lchownSync(path, h.uid ?? 0, h.gid ?? 0);
  if (!isLink) fs.chmodSync(path, (h.mode ?? 0o644) & 0o7777);
  for (const [name, value] of entryXattrs(h, pax)) lsetxattr(path, name, value);
  const mtime = h.mtime ?? new Date(0);
  if (h.type === 'directory') dirTimes.push(path, mtime);
  else fs.lutimesSync(path, mtime, mtime);
}

export { cleanPath as cleanLayerPath };
