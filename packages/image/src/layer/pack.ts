import * as fs from 'node:fs';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DirFd, fdPath, lgetxattr, llistxattr } from '@corral/sys';
import {
  isOpaque,
  isOverlayXattr,
  isWhiteout,
  ociWhiteoutName,
  WHITEOUT_OPAQUE,
} from '@corral/unionfs/whiteout';
import * as tar from 'tar-stream';

export interface PackOptions {
  /** Same mtime on every entry, for tars whose bytes (and digest) do not depend on when they were made. */
  mtime?: Date;
  /** Paths left out, relative to the folder (`etc/hosts`): what the engine wrote there, not the program. */
  exclude?: ReadonlySet<string>;
}

type Header = tar.Header;
type Pack = tar.Pack;

/** One PAX record: "<len> key=value\n", where len counts itself. */
function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`), value, Buffer.from('\n')]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len)), body]);
}

const isAscii = (s: string) => /^[\x20-\x7e]*$/.test(s);
const MAX_OCTAL_ID = 0o7777777;

/** True when tar-stream's ustar header can hold the name (100, or 155 prefix + 100). */
function fitsUstar(name: string): boolean {
  if (!isAscii(name)) return false;
  if (name.length <= 100) return true;
  const i = name.lastIndexOf('/', 155);
  return i > 0 && name.length - i - 1 <= 100;
}

/** A ustar header block for a PAX extended header ('x') of `size` bytes. */
function paxHeaderBlock(size: number, mtime: Date): Buffer {
  const b = Buffer.alloc(512);
  const octal = (v: number, off: number, len: number) =>
    b.write(`${v.toString(8).padStart(len - 1, '0')}\0`, off, 'ascii');
  b.write('PaxHeader', 0, 'ascii');
  octal(0o644, 100, 8);
  octal(0, 108, 8);
  octal(0, 116, 8);
  octal(size, 124, 12);
  octal(Math.max(0, Math.floor(mtime.getTime() / 1000)), 136, 12);
  b.write('        ', 148, 'ascii');
  b.write('x', 156, 'ascii');
  b.write('ustar\0', 257, 'ascii');
  b.write('00', 263, 'ascii');
  let sum = 0;
  for (const byte of b) sum += byte;
  b.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
  return b;
}

/**
 * tar-stream's pack writes PAX values as text and allows no body on an 'x' entry, so the
 * PAX header is pushed as raw blocks between two entries (none is open: entries are awaited).
 */
function pushPaxHeader(pack: Pack, body: Buffer, mtime: Date): void {
  if ((pack as unknown as { _stream: unknown })._stream) throw new Error('tar pack: an entry is still open');
  const pad = (512 - (body.length % 512)) % 512;
  (pack as unknown as { push(b: Buffer): boolean }).push(
    Buffer.concat([paxHeaderBlock(body.length, mtime), body, Buffer.alloc(pad)]),
  );
}

function writeEntry(
  pack: Pack,
  header: Header & { xattrs?: [string, Buffer][] },
  body?: Readable,
): Promise<void> {
  const { xattrs, ...h } = header;
  const records: Buffer[] = [];
  for (const [name, value] of xattrs ?? []) records.push(paxRecord(`SCHILY.xattr.${name}`, value));
  const dirName = h.type === 'directory' && !h.name.endsWith('/') ? `${h.name}/` : h.name;
  if (
    records.length ||
    !fitsUstar(dirName) ||
    (h.linkname && (h.linkname.length > 100 || !isAscii(h.linkname)))
  ) {
    // Our own PAX header keeps binary values intact (tar-stream writes PAX values as text).
    records.unshift(paxRecord('path', Buffer.from(h.name)));
    if (h.linkname) records.push(paxRecord('linkpath', Buffer.from(h.linkname)));
    if (h.uid > MAX_OCTAL_ID) records.push(paxRecord('uid', Buffer.from(String(h.uid))));
    if (h.gid > MAX_OCTAL_ID) records.push(paxRecord('gid', Buffer.from(String(h.gid))));
    pushPaxHeader(pack, Buffer.concat(records), h.mtime);
    h.name = h.name.replace(/[^\x20-\x7e]/g, '_').slice(-99);
    if (h.linkname) h.linkname = h.linkname.replace(/[^\x20-\x7e]/g, '_').slice(-99);
    if (h.uid > MAX_OCTAL_ID) h.uid = 0;
    if (h.gid > MAX_OCTAL_ID) h.gid = 0;
  }
  return new Promise((resolve, reject) => {
    const sink = pack.entry(h, (err) => (err ? reject(err) : resolve()));
    if (body) pipeline(body, sink as unknown as NodeJS.WritableStream).catch(reject);
    else (sink as unknown as NodeJS.WritableStream).end();
  });
}

function readXattrs(path: string): [string, Buffer][] {
  const out: [string, Buffer][] = [];
  for (const name of llistxattr(path).sort()) {
    if (isOverlayXattr(name)) continue;
    const v = lgetxattr(path, name);
    if (v) out.push([name, v]);
  }
  return out;
}

/** Errors of an entry that changed or went away while a live folder was walked: it is skipped. */
// SyscallError and Node's errors both carry the errno name as `code`.
const changedMeanwhile = (e: unknown) =>
  ['ENOENT', 'ELOOP', 'ENOTDIR'].includes((e as { code?: string } | null)?.code ?? '');

/** Runs `f`, or gives null when the entry it looks at changed or went away meanwhile. */
function unlessChanged<T>(f: () => T, ...also: string[]): T | null {
  try {
    return f();
  } catch (e) {
    if (changedMeanwhile(e) || also.includes((e as { code?: string }).code ?? '')) return null;
    throw e;
  }
}

function deviceNumbers(rdev: number): { devmajor: number; devminor: number } {
  const r = BigInt(rdev);
  return {
    devmajor: Number((r >> 8n) & 0xfffn) | Number((r >> 32n) & ~0xfffn),
    devminor: Number(r & 0xffn) | Number((r >> 12n) & ~0xffn),
  };
}

/**
 * Walks `dir` in sorted order and writes every entry to a tar. With `overlay` set, the
 * overlay upper format is turned back into OCI whiteouts: a 0/0 character device becomes
 * `.wh.NAME`, an opaque folder gets a `.wh..wh..opq` entry.
 * The folder may belong to a running container, which can swap a folder for a symlink to the
 * host's `/` at any moment (CVE-2018-15664): each folder is held by an fd and its entries are
 * opened relative to it with O_NOFOLLOW, a file's header comes from the fd its data is read
 * from, and an entry that changed or went away meanwhile is left out.
 */
function packTree(dir: string, overlay: boolean, options: PackOptions): Readable {
  const pack = tar.pack();
  const links = new Map<string, string>();
  const walk = async (d: DirFd, rel: string): Promise<void> => {
    for (const name of d.names().sort()) {
      const relPath = rel ? `${rel}/${name}` : name;
      if (options.exclude?.has(relPath)) continue;
      const lst = unlessChanged(() => d.lstat(name));
      if (!lst) continue;
      const header = (st: fs.Stats): Header => ({
        name: relPath,
        mode: st.mode & 0o7777,
        uid: st.uid,
        gid: st.gid,
        mtime: options.mtime ?? st.mtime,
        size: 0,
        type: 'file',
        linkname: '',
        uname: '',
        gname: '',
        devmajor: 0,
        devminor: 0,
      });
      if (overlay && isWhiteout(lst)) {
        await writeEntry(pack, {
          ...header(lst),
          name: rel ? `${rel}/${ociWhiteoutName(name)}` : ociWhiteoutName(name),
          mode: 0o600,
        });
        continue;
      }
      const xattrs = unlessChanged(() => readXattrs(d.at(name))) ?? [];
      if (lst.isDirectory()) {
        const sub = unlessChanged(() => d.dir(name));
        if (!sub) continue;
        try {
          const st = fs.fstatSync(sub.fd);
          await writeEntry(pack, { ...header(st), type: 'directory', xattrs });
          if (overlay && isOpaque(`${fdPath(sub.fd)}/.`)) {
            await writeEntry(pack, { ...header(st), name: `${relPath}/${WHITEOUT_OPAQUE}`, mode: 0o600 });
          }
          await walk(sub, relPath);
        } finally {
          sub.close();
        }
      } else if (lst.isSymbolicLink()) {
        // EINVAL: no longer a symlink.
        const linkname = unlessChanged(() => d.readlink(name), 'EINVAL');
        if (linkname !== null) await writeEntry(pack, { ...header(lst), type: 'symlink', linkname, xattrs });
      } else if (lst.isFile()) {
        const file = unlessChanged(() => d.file(name));
        if (!file) continue;
        const { fd, st } = file;
        const key = `${st.dev}:${st.ino}`;
        const first = st.nlink > 1 ? links.get(key) : undefined;
        if (first || st.size === 0) {
          fs.closeSync(fd);
          await writeEntry(
            pack,
            first ? { ...header(st), type: 'link', linkname: first, xattrs } : { ...header(st), xattrs },
          );
          continue;
        }
        if (st.nlink > 1) links.set(key, relPath);
        // No more than the header says, even if the file grows meanwhile.
        const body = fs.createReadStream('', { fd, start: 0, end: st.size - 1 });
        await writeEntry(pack, { ...header(st), size: st.size, xattrs }, body);
      } else if (lst.isCharacterDevice() || lst.isBlockDevice()) {
        await writeEntry(pack, {
          ...header(lst),
          type: lst.isCharacterDevice() ? 'character-device' : 'block-device',
          ...deviceNumbers(lst.rdev),
          xattrs,
        });
      } else if (lst.isFIFO()) {
        await writeEntry(pack, { ...header(lst), type: 'fifo', xattrs });
      }
      // Sockets cannot be carried in a tar; docker skips them too.
    }
  };
  let top: DirFd;
  try {
    top = DirFd.open(dir);
  } catch (e) {
    pack.destroy(e as Error);
    return pack as unknown as Readable;
  }
  walk(top, '').then(
    () => {
      top.close();
      pack.finalize();
    },
    (e) => {
      top.close();
      pack.destroy(e);
    },
  );
  return pack as unknown as Readable;
}

/** A container's upper folder (overlay format) as an OCI layer tar, whiteouts translated back. */
export function diffLayer(upperDir: string, options: PackOptions = {}): Readable {
  return packTree(upperDir, true, options);
}

/** A whole root filesystem folder as a tar (docker export). */
export function exportRootfs(rootfsDir: string, options: PackOptions = {}): Readable {
  return packTree(rootfsDir, false, options);
}
