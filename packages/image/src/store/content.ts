import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { ImageError } from '../errors.js';
import { digestHex } from './digest.js';
import { fsyncDirAsync, tempName } from './fsutil.js';

/** Bytes gathered before a write is issued (network reads come in 16-64 KiB pieces). */
const WRITE_BATCH = 1024 * 1024;
/** Bytes written but not yet on the page cache before reading pauses. */
const MAX_IN_FLIGHT = 8 * 1024 * 1024;

const writevAsync = (fd: number, bufs: Buffer[], position: number) =>
  new Promise<number>((resolve, reject) =>
    fs.writev(fd, bufs, position, (e, n) => (e ? reject(e) : resolve(n))),
  );
const fdatasyncAsync = promisify(fs.fdatasync);
const closeAsync = promisify(fs.close);

/** Writes all of `bufs` at `position` with writev (no copy); a short write continues where it stopped. */
async function writeAll(fd: number, bufs: Buffer[], position: number): Promise<void> {
  let rest = bufs;
  while (rest.length) {
    let n = await writevAsync(fd, rest, position);
    position += n;
    let i = 0;
    while (i < rest.length && n >= rest[i].byteLength) n -= rest[i++].byteLength;
    rest = rest.slice(i);
    if (n > 0) rest[0] = rest[0].subarray(n);
  }
}

/** What a blob must be, when known. */
export interface BlobExpectation {
  digest?: string;
  size?: number;
  /** Told the running byte count as data arrives (progress of a download). */
  onBytes?: (total: number) => void;
}

export interface BlobInfo {
  digest: string;
  size: number;
}

/** Data to store: a buffer, a Node stream or any async iterable of bytes (e.g. a tar entry). */
export type BlobSource = Buffer | Uint8Array | Readable | AsyncIterable<Uint8Array>;

/**
 * Blobs addressed by sha256 under `ROOT/blobs/sha256/<hex>`. A write streams to a temp
 * file while hashing (async writes on the libuv pool overlap the hashing and the source),
 * checks digest and size, fdatasyncs and renames: a blob is either whole and verified or
 * absent.
 */
export class ContentStore {
  readonly root: string;
  readonly blobsDir: string;
  readonly tmpDir: string;

  constructor(root: string) {
    this.root = root;
    this.blobsDir = join(root, 'blobs', 'sha256');
    this.tmpDir = join(root, 'tmp');
    fs.mkdirSync(this.blobsDir, { recursive: true });
    fs.mkdirSync(this.tmpDir, { recursive: true });
  }

  blobPath(digest: string): string {
    return join(this.blobsDir, digestHex(digest));
  }

  hasBlob(digest: string): boolean {
    return fs.existsSync(this.blobPath(digest));
  }

  /** Size in bytes of a stored blob; NOT_FOUND when absent. */
  blobSize(digest: string): number {
    try {
      return fs.statSync(this.blobPath(digest)).size;
    } catch (e) {
      throw this.notFound(digest, e);
    }
  }

  async writeBlob(source: BlobSource, expected: BlobExpectation = {}): Promise<BlobInfo> {
    if (expected.digest !== undefined) digestHex(expected.digest);
    const tmp = tempName(this.tmpDir, 'blob');
    // Opened synchronously, so that a stream source is read (and its errors are listened
    // for) from this very tick: an error it emits meanwhile would otherwise go unhandled.
    const fd = fs.openSync(tmp, 'wx', 0o644);
    // Hashed on this thread as data arrives: a hashing thread was tried and lost on this
    // 2-CPU machine (copies and thread hops cost more than they freed).
    const hash = createHash('sha256');
    // Data is hashed on arrival and written with positional writes that run on the libuv
    // pool while more data arrives; small chunks (network reads) are gathered into one
    // writev (no copy), and at most MAX_IN_FLIGHT bytes wait for the disk before reading pauses.
    let size = 0;
    let digest = '';
    let written = 0;
    let batch: Buffer[] = [];
    let batchBytes = 0;
    const inFlight: { done: Promise<void>; bytes: number }[] = [];
    let inFlightBytes = 0;
    let writeError: unknown;
    const flush = () => {
      if (batchBytes === 0) return;
      const bufs = batch;
      const bytes = batchBytes;
      const position = written;
      written += batchBytes;
      batch = [];
      batchBytes = 0;
      const done = writeAll(fd, bufs, position).catch((e) => {
        writeError ??= e;
      });
      inFlight.push({ done, bytes });
      inFlightBytes += bytes;
    };
    const settle = async (untilBytes: number) => {
      while (inFlight.length && inFlightBytes > untilBytes) {
        const w = inFlight.shift()!;
        await w.done;
        inFlightBytes -= w.bytes;
      }
      if (writeError) throw writeError;
    };
    const add = async (chunk: Uint8Array) => {
      if (writeError) throw writeError;
      hash.update(chunk);
      size += chunk.byteLength;
      expected.onBytes?.(size);
      if (expected.size !== undefined && size > expected.size) {
        throw new ImageError(
          'SIZE_MISMATCH',
          `blob ${expected.digest ?? ''} is larger than the expected ${expected.size} bytes; refusing it`,
        );
      }
      const buf = Buffer.isBuffer(chunk)
        ? chunk
        : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      if (buf.byteLength >= WRITE_BATCH) {
        flush();
        batch.push(buf);
        batchBytes = buf.byteLength;
        flush();
      } else {
        batch.push(buf);
        batchBytes += buf.byteLength;
        if (batchBytes >= WRITE_BATCH || batch.length >= 256) flush();
      }
      if (inFlightBytes > MAX_IN_FLIGHT) await settle(MAX_IN_FLIGHT / 2);
    };
    try {
      if (source instanceof Uint8Array) await add(source);
      else
        for await (const chunk of source as AsyncIterable<Uint8Array | string>)
          await add(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
      flush();
      await settle(0);
      await fdatasyncAsync(fd);
      digest = `sha256:${hash.digest('hex')}`;
    } catch (e) {
      // Let writes under way finish before the temp file goes, so none lands after.
      await Promise.all(inFlight.map((w) => w.done));
      await closeAsync(fd).catch(() => {});
      await fs.promises.rm(tmp, { force: true });
      throw e;
    }
    await closeAsync(fd);
    const fail = async (err: ImageError): Promise<never> => {
      await fs.promises.rm(tmp, { force: true });
      throw err;
    };
    if (expected.digest !== undefined && digest !== expected.digest) {
      await fail(
        new ImageError(
          'DIGEST_MISMATCH',
          `blob digest mismatch: expected ${expected.digest}, got ${digest} (${size} bytes); the data is corrupt or not what was asked for, nothing was stored`,
        ),
      );
    }
    if (expected.size !== undefined && size !== expected.size) {
      await fail(
        new ImageError(
          'SIZE_MISMATCH',
          `blob ${digest} has ${size} bytes, expected ${expected.size}; nothing was stored`,
        ),
      );
    }
    const dest = this.blobPath(digest);
    if (fs.existsSync(dest)) {
      await fs.promises.rm(tmp, { force: true });
    } else {
      try {
        await fs.promises.rename(tmp, dest);
      } catch (e) {
        await fs.promises.rm(tmp, { force: true });
        throw e;
      }
      await fsyncDirAsync(this.blobsDir);
    }
    return { digest, size };
  }

  /** A stream of a stored blob; `highWaterMark` sets the read size (default 64 KiB). */
  openBlob(digest: string, options: { highWaterMark?: number } = {}): Readable {
    const path = this.blobPath(digest);
    if (!fs.existsSync(path)) throw this.notFound(digest);
    return fs.createReadStream(path, { highWaterMark: options.highWaterMark });
  }

  async readBlob(digest: string): Promise<Buffer> {
    try {
      return await fs.promises.readFile(this.blobPath(digest));
    } catch (e) {
      throw this.notFound(digest, e);
    }
  }

  async readJson<T>(digest: string): Promise<T> {
    const data = await this.readBlob(digest);
    try {
      return JSON.parse(data.toString('utf8')) as T;
    } catch (e) {
      throw new ImageError('BAD_MANIFEST', `blob ${digest} is not valid JSON: ${(e as Error).message}`);
    }
  }

  /** Every stored blob digest. */
  listBlobs(): string[] {
    return fs
      .readdirSync(this.blobsDir)
      .filter((n) => /^[a-f0-9]{64}$/.test(n))
      .map((n) => `sha256:${n}`);
  }

  deleteBlob(digest: string): boolean {
    try {
      fs.unlinkSync(this.blobPath(digest));
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw e;
    }
  }

  private notFound(digest: string, cause?: unknown): ImageError {
    if (cause && (cause as NodeJS.ErrnoException).code !== 'ENOENT') throw cause;
    return new ImageError('NOT_FOUND', `blob ${digest} is not in the content store (${this.blobsDir})`);
  }
}
