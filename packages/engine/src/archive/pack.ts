// A tar of one file or folder tree, read through fds: each folder is held open and its
// entries are opened relative to it with O_NOFOLLOW (DirFd), so a folder that a running
// container swaps for a symlink mid-walk is never followed to the host.
import { fstatSync, read as readCb, type Stats } from 'node:fs';
import type { Readable, Writable } from 'node:stream';
import { promisify } from 'node:util';
import { type TarHeader, tarPack } from '@corral/image';
import { close, DirFd, fdPath, isErrno } from '@corral/sys';

const read = promisify(readCb);
type Pack = ReturnType<typeof tarPack>;

export interface PackSource {
  /** The folder holding the entry (any fd of it; it is not closed here). */
  dirfd: number;
  /** The entry in that folder, or `.` for the folder itself. */
  name: string;
  /** The top entry's name in the tar (its children are `as/...`). */
  as: string;
}

/** Packs `src` into a tar stream (entries sorted by name, hard links kept as links). */
export function packTree(src: PackSource): Readable {
  const pack = tarPack();
  const parent = DirFd.open(fdPath(src.dirfd));
  const links = new Map<string, string>();
  const walk = async () => {
    try {
      if (src.name === '.') await addDir(pack, parent, src.as, links);
      else await addEntry(pack, parent, src.name, src.as, links);
      pack.finalize();
    } finally {
      parent.close();
    }
  };
  walk().catch((e: Error) => pack.destroy(e));
  return pack as unknown as Readable;
}

/** A name was removed or changed type between the listing and its open: left out. */
const vanished = (e: unknown) => isErrno(e, 'ENOENT', 'ELOOP', 'ENOTDIR');

async function addEntry(pack: Pack, dir: DirFd, name: string, as: string, links: Map<string, string>) {
  let st: Stats;
  try {
    st = dir.lstat(name);
  } catch (e) {
    if (vanished(e)) return;
    throw e;
  }
  if (st.isDirectory()) {
    let sub: DirFd;
    try {
      sub = dir.dir(name);
    } catch (e) {
      if (vanished(e)) return;
      throw e;
    }
    try {
      await addDir(pack, sub, as, links);
    } finally {
      sub.close();
    }
  } else if (st.isSymbolicLink()) {
    await entry(pack, header(st, as, { type: 'symlink', linkname: dir.readlink(name) }));
  } else if (st.isFile()) {
    const f = dir.file(name);
    if (!f) return; // no longer a regular file
    try {
      const key = `${f.st.dev}:${f.st.ino}`;
      const first = f.st.nlink > 1 ? links.get(key) : undefined;
      if (first) return await entry(pack, header(f.st, as, { type: 'link', linkname: first }));
      if (f.st.nlink > 1) links.set(key, as);
      await fileEntry(pack, header(f.st, as, { type: 'file', size: f.st.size }), f.fd, f.st.size);
    } finally {
      close(f.fd);
    }
  } else if (st.isFIFO() || st.isCharacterDevice() || st.isBlockDevice()) {
    const type = st.isFIFO() ? 'fifo' : st.isCharacterDevice() ? 'character-device' : 'block-device';
    const rdev = BigInt(st.rdev);
    await entry(
      pack,
      header(st, as, {
        type,
        devmajor: Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn)),
        devminor: Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn)),
      }),
    );
  } // sockets have no tar form: left out, as Docker does
}

async function addDir(pack: Pack, dir: DirFd, as: string, links: Map<string, string>) {
  await entry(pack, header(fstatSync(dir.fd), as.endsWith('/') ? as : `${as}/`, { type: 'directory' }));
  const prefix = as === '/' ? '/' : `${as.replace(/\/$/, '')}/`;
  for (const child of dir.names().sort()) await addEntry(pack, dir, child, prefix + child, links);
}

function header(st: Stats, name: string, extra: Partial<TarHeader>): TarHeader {
  return {
    name,
    mode: st.mode & 0o7777,
    uid: st.uid,
    gid: st.gid,
    mtime: st.mtime,
    size: 0,
    linkname: '',
    uname: '',
    gname: '',
    devmajor: 0,
    devminor: 0,
    ...extra,
  } as TarHeader;
}

function entry(pack: Pack, h: TarHeader): Promise<void> {
  return new Promise((resolve, reject) => {
    pack.entry(h, (err) => (err ? reject(err) : resolve()));
  });
}

/**
 * A regular file's bytes: exactly the size in its header. A file that a running container
 * shortens meanwhile is padded with zeros, one it grows is cut (the tar stays well formed).
 */
async function fileEntry(pack: Pack, h: TarHeader, fd: number, size: number): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const sink = pack.entry(h, (err) => (err ? reject(err) : resolve())) as unknown as Writable;
    const pump = async () => {
      let done = 0;
      while (done < size) {
        const buf = Buffer.alloc(Math.min(1 << 20, size - done));
        let n = (await read(fd, buf, 0, buf.length, done)).bytesRead;
        if (n === 0) n = buf.length; // shortened: zeros
        done += n;
        if (!sink.write(n === buf.length ? buf : buf.subarray(0, n)))
          await new Promise((r) => sink.once('drain', r));
      }
      sink.end();
    };
    pump().catch((e) => {
      sink.destroy(e);
      reject(e);
    });
  });
}
