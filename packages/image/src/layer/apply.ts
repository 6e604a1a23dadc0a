import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { type Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { lsetxattr, makedev, mknod, S_IF } from '@corral/sys';
import * as tar from 'tar-stream';
import { ImageError } from '../errors.js';
import { type Compression, Decompress } from './compress.js';
import { isOverlayXattr, OPAQUE_XATTR, WHITEOUT_OPAQUE, WHITEOUT_PREFIX } from './whiteout.js';

export interface ApplyResult {
  /** sha256 of the uncompressed tar: the layer's diff ID. */
  diffId: string;
  /** Bytes of the uncompressed tar. */
  size: number;
  compression: Compression;
  entries: number;
  /** Entries of kinds a layer folder cannot hold (e.g. sockets, GNU sparse), by name. */
  skipped: string[];
}

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
): Promise<ApplyResult> {
  const root = fs.realpathSync(dest);
  const hash = createHash('sha256');
  let size = 0;
  const hasher = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      size += chunk.length;
      cb(null, chunk);
    },
  });
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
  const dirTimes: [string, Date][] = [];
  const skipped: string[] = [];
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
  // When the folder starts empty, everything in it is made here: a path not in `made` does
  // not exist, and is not looked up (a lookup would wait on the folder's lock while the
  // pool creates files in it).
  const tracked = fs.readdirSync(root).length === 0;
  const made = new Set<string>();
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
        return resolveParents(root, parts, name, dirCache, pending, made);
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
      dirCache.clear();
      fs.rmSync(path, { recursive: true, force: true });
      const inside = `${path}/`;
      for (const p of made) if (p.startsWith(inside)) made.delete(p);
    } else {
      if (st.isSymbolicLink()) dirCache.clear();
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
    if (base.startsWith(WHITEOUT_PREFIX)) {
      stream.resume();
      if (base === WHITEOUT_OPAQUE) {
        lsetxattr(parent, OPAQUE_XATTR, Buffer.from('y'));
        return;
      }
      if (base.startsWith(`${WHITEOUT_PREFIX}${WHITEOUT_PREFIX}`)) return; // aufs metadata (.wh..wh.plnk ...)
      const name = base.slice(WHITEOUT_PREFIX.length);
      if (!name || name === '.' || name === '..') unsafe(header.name, 'is a whiteout of nothing');
      const path = join(parent, name);
      await clear(path, false);
      mknod(path, S_IF.CHR | 0o000, makedev(0, 0));
      made.add(path);
      fs.lchownSync(path, header.uid ?? 0, header.gid ?? 0);
      return;
    }
    const path = join(parent, base);
    switch (header.type) {
      case 'directory': {
        const existing = await clear(path, true);
        if (!existing) {
          fs.mkdirSync(path, { mode: 0o700 });
          made.add(path);
        }
        setMeta(path, header, pax, false, dirTimes);
        stream.resume();
        return;
      }
      case 'file':
      case 'contiguous-file': {
        await clear(path, false);
        made.add(path);
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
        made.add(path);
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
        made.add(path);
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
        made.add(path);
        setMeta(path, header, pax, false, dirTimes);
        return;
      }
      default:
        stream.resume();
        skipped.push(`${header.name} (${header.type})`);
    }
  };

  extract.on('entry', (header, stream, next) => {
    handle(header, stream as unknown as Readable).then(
      () => next(),
      (e) => {
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
    if (e instanceof ImageError || (e as { name?: string }).name === 'SyscallError') throw e;
    throw new ImageError('BAD_LAYER', `cannot read the layer tar: ${(e as Error).message}`, { cause: e });
  }
  // Folder times last: creating entries inside a folder changes its mtime.
  for (let i = dirTimes.length - 1; i >= 0; i--) {
    const [p, t] = dirTimes[i];
    fs.lutimesSync(p, t, t);
  }
  return {
    diffId: `sha256:${hash.digest('hex')}`,
    size,
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
/** A small file's data up to this size is written on this thread. */
const SYNC_WRITE_MAX = 64 * 1024;
/** Pieces of a big file are gathered into writes of this size. */
const WRITE_BATCH = 1024 * 1024;

const writevAsync = (fd: number, bufs: Buffer[], position: number): Promise<number> =>
  new Promise((resolve, reject) => fs.writev(fd, bufs, position, (e, n) => (e ? reject(e) : resolve(n))));

const openAsync = (path: string, flags: number, mode: number): Promise<number> =>
  new Promise((resolve, reject) => fs.open(path, flags, mode, (e, fd) => (e ? reject(e) : resolve(fd))));

/**
 * A small file: only the create (O_EXCL, the costly step: it holds the folder's lock) goes
 * to the pool; data, owner, mode (after chown) and times then go through the new fd, which
 * takes no folder lock and is quick.
 */
async function writeSmallFile(path: string, h: Header, chunks: Buffer[]): Promise<void> {
  const fd = await openAsync(path, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
  try {
    // The pieces as the tar stream gave them, in one writev (no copy into one buffer): here
    // when small (cheaper than a trip to the pool), on the pool when large (it would hold up
    // the tar stream on this thread).
    let rest = chunks.filter((c) => c.length > 0);
    const sync = rest.reduce((n, c) => n + c.length, 0) <= SYNC_WRITE_MAX;
    let position = 0;
    while (rest.length) {
      let n = sync ? fs.writevSync(fd, rest, position) : await writevAsync(fd, rest, position);
      position += n;
      let i = 0;
      while (i < rest.length && n >= rest[i].length) n -= rest[i++].length;
      rest = rest.slice(i);
      if (n > 0) rest[0] = rest[0].subarray(n);
    }
    fs.fchownSync(fd, h.uid ?? 0, h.gid ?? 0);
    fs.fchmodSync(fd, (h.mode ?? 0o644) & 0o7777);
    const mtime = h.mtime ?? new Date(0);
    fs.futimesSync(fd, mtime, mtime);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Creates a regular file (O_EXCL: never through a symlink that might have appeared) with
 * `data`, or what `stream` yields, then owner, mode (after chown, which clears setuid bits)
 * and times through the open file.
 */
async function writeFileFrom(
  path: string,
  h: Header,
  data: Buffer | undefined,
  stream: AsyncIterable<Buffer> | undefined,
): Promise<void> {
  const file = await fs.promises.open(
    path,
    fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL,
    0o600,
  );
  try {
    let position = 0;
    const write = async (buf: Buffer) => {
      let off = 0;
      while (off < buf.length) {
        const { bytesWritten } = await file.write(buf, off, buf.length - off, position + off);
        off += bytesWritten;
      }
      position += buf.length;
    };
    if (data) {
      if (data.length) await write(data);
    } else if (stream) {
      let batch: Buffer[] = [];
      let batchBytes = 0;
      for await (const chunk of stream) {
        batch.push(chunk);
        batchBytes += chunk.length;
        if (batchBytes >= WRITE_BATCH) {
          await write(batch.length === 1 ? batch[0] : Buffer.concat(batch, batchBytes));
          batch = [];
          batchBytes = 0;
        }
      }
      if (batchBytes) await write(batch.length === 1 ? batch[0] : Buffer.concat(batch, batchBytes));
    }
    await file.chown(h.uid ?? 0, h.gid ?? 0);
    await file.chmod((h.mode ?? 0o644) & 0o7777);
    const mtime = h.mtime ?? new Date(0);
    await file.utimes(mtime, mtime);
  } finally {
    await file.close();
  }
}

/** Owner, then mode (chmod after chown, which clears setuid bits), xattrs, times. */
function setMeta(
  path: string,
  h: Header,
  pax: Map<string, Buffer> | undefined,
  isLink: boolean,
  dirTimes: [string, Date][],
): void {
  fs.lchownSync(path, h.uid ?? 0, h.gid ?? 0);
  if (!isLink) fs.chmodSync(path, (h.mode ?? 0o644) & 0o7777);
  for (const [name, value] of entryXattrs(h, pax)) lsetxattr(path, name, value);
  const mtime = h.mtime ?? new Date(0);
  if (h.type === 'directory') dirTimes.push([path, mtime]);
  else fs.lutimesSync(path, mtime, mtime);
}

export { cleanPath as cleanLayerPath };
