import * as fs from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { ImageError } from '../errors.js';
import { type BlobExpectation, type BlobInfo, BlobWriter } from './blob-writer.js';
import { digestHex } from './digest.js';
import { tempName } from './fsutil.js';

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
  /** Every write is hashed and checked against the expected digest (see BlobSink). */
  readonly verifiesDigest = true;

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

  /** A writer for one blob (see BlobWriter); `writeBlob` is the usual way in. */
  createWriter(expected: BlobExpectation = {}): BlobWriter {
    return new BlobWriter(
      { tmpPath: tempName(this.tmpDir, 'blob'), pathOf: (d) => this.blobPath(d), dir: this.blobsDir },
      expected,
    );
  }

  async writeBlob(source: BlobSource, expected: BlobExpectation = {}): Promise<BlobInfo> {
    // Created (the temp file opened) synchronously, so that a stream source is read (and its
    // errors are listened for) from this very tick: an error it emits meanwhile would
    // otherwise go unhandled.
    const writer = this.createWriter(expected);
    try {
      if (source instanceof Uint8Array) await writer.write(source);
      else
        for await (const chunk of source as AsyncIterable<Uint8Array | string>)
          await writer.write(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
    } catch (e) {
      await writer.abort();
      throw e;
    }
    return writer.finish();
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
