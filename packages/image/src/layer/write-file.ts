import * as fs from 'node:fs';
import type * as tar from 'tar-stream';

type Header = tar.Header;

/** A small file's data up to this size is written on this thread. */
const SYNC_WRITE_MAX = 64 * 1024;
/** Pieces of a big file are gathered into writes of this size. */
const WRITE_BATCH = 1024 * 1024;
/** Bytes of folder paths kept to set their times last: past this, times are set at once. */
const MAX_DIR_TIME_BYTES = 64 * 1024 * 1024;

const writevAsync = (fd: number, bufs: Buffer[], position: number): Promise<number> =>
  new Promise((resolve, reject) => fs.writev(fd, bufs, position, (e, n) => (e ? reject(e) : resolve(n))));

const openAsync = (path: string, flags: number, mode: number): Promise<number> =>
  new Promise((resolve, reject) => fs.open(path, flags, mode, (e, fd) => (e ? reject(e) : resolve(fd))));

/**
 * A small file: only the create (O_EXCL, the costly step: it holds the folder's lock) goes
 * to the pool; data, owner, mode (after chown) and times then go through the new fd, which
 * takes no folder lock and is quick.
 */
export async function writeSmallFile(path: string, h: Header, chunks: Buffer[]): Promise<void> {
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
export async function writeFileFrom(
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

/**
 * Folder times, set last: creating entries inside a folder changes its mtime. Past
 * MAX_DIR_TIME_BYTES of paths (a hostile layer of millions of deep folders) a folder's time
 * is set at once instead, and may then move with what is made in it later.
 */
export class DirTimes {
  private readonly list: [string, Date][] = [];
  private bytes = 0;

  push(path: string, mtime: Date): void {
    if (this.bytes + path.length > MAX_DIR_TIME_BYTES) {
      fs.lutimesSync(path, mtime, mtime);
      return;
    }
    this.bytes += path.length;
    this.list.push([path, mtime]);
  }

  apply(): void {
    for (let i = this.list.length - 1; i >= 0; i--) {
      const [p, t] = this.list[i];
      fs.lutimesSync(p, t, t);
    }
  }
}
