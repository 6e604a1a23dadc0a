import * as fs from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { lgetxattr, llistxattr } from '@corral/sys';
import * as tar from 'tar-stream';
import { isOverlayXattr, OPAQUE_XATTR, WHITEOUT_OPAQUE, WHITEOUT_PREFIX } from './whiteout.js';

export interface PackOptions {
  /** Same mtime on every entry, for tars whose bytes (and digest) do not depend on when they were made. */
  mtime?: Date;
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

/**
 * Walks `dir` in sorted order and writes every entry to a tar. With `overlay` set, the
 * overlay upper format is turned back into OCI whiteouts: a 0/0 character device becomes
 * `.wh.NAME`, an opaque folder gets a `.wh..wh..opq` entry.
 */
function packTree(dir: string, overlay: boolean, options: PackOptions): Readable {
  const pack = tar.pack();
  const links = new Map<string, string>();
  const walk = async (rel: string): Promise<void> => {
    const names = fs.readdirSync(join(dir, rel)).sort();
    for (const name of names) {
      const relPath = rel ? `${rel}/${name}` : name;
      const path = join(dir, relPath);
      const st = fs.lstatSync(path);
      const mtime = options.mtime ?? st.mtime;
      const base: Header = {
        name: relPath,
        mode: st.mode & 0o7777,
        uid: st.uid,
        gid: st.gid,
        mtime,
        size: 0,
        type: 'file',
        linkname: '',
        uname: '',
        gname: '',
        devmajor: 0,
        devminor: 0,
      };
      if (overlay && st.isCharacterDevice() && st.rdev === 0) {
        await writeEntry(pack, {
          ...base,
          name: rel ? `${rel}/${WHITEOUT_PREFIX}${name}` : `${WHITEOUT_PREFIX}${name}`,
          mode: 0o600,
        });
        continue;
      }
      const xattrs = readXattrs(path);
      if (st.isDirectory()) {
        await writeEntry(pack, { ...base, type: 'directory', xattrs });
        if (overlay && lgetxattr(path, OPAQUE_XATTR)?.toString() === 'y') {
          await writeEntry(pack, { ...base, name: `${relPath}/${WHITEOUT_OPAQUE}`, mode: 0o600 });
        }
        await walk(relPath);
      } else if (st.isSymbolicLink()) {
        await writeEntry(pack, { ...base, type: 'symlink', linkname: fs.readlinkSync(path), xattrs });
      } else if (st.isFile()) {
        const key = `${st.dev}:${st.ino}`;
        const first = st.nlink > 1 ? links.get(key) : undefined;
        if (first) {
          await writeEntry(pack, { ...base, type: 'link', linkname: first, xattrs });
          continue;
        }
        if (st.nlink > 1) links.set(key, relPath);
        await writeEntry(pack, { ...base, type: 'file', size: st.size, xattrs }, fs.createReadStream(path));
      } else if (st.isCharacterDevice() || st.isBlockDevice()) {
        const major = Number((BigInt(st.rdev) >> 8n) & 0xfffn) | Number((BigInt(st.rdev) >> 32n) & ~0xfffn);
        const minor = Number(BigInt(st.rdev) & 0xffn) | Number((BigInt(st.rdev) >> 12n) & ~0xffn);
        await writeEntry(pack, {
          ...base,
          type: st.isCharacterDevice() ? 'character-device' : 'block-device',
          devmajor: major,
          devminor: minor,
          xattrs,
        });
      } else if (st.isFIFO()) {
        await writeEntry(pack, { ...base, type: 'fifo', xattrs });
      }
      // Sockets cannot be carried in a tar; docker skips them too.
    }
  };
  walk('').then(
    () => pack.finalize(),
    (e) => pack.destroy(e),
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
