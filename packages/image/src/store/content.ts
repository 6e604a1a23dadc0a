import * as fs from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { ImageError } from '../errors.js';
import { type BlobExpectation, type BlobInfo, BlobWriter } from './blob-writer.js';
import { digestHex } from './digest.js';
import { tempName } from './fsutil.js';
import { tooBig } from './limits.js';
import { SpaceGuard } from './space.js';
import { privateDir } from './state-dir.js';

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
    // Folders are 0700 (see state-dir.ts); ones an older version made 0755 are fixed here.
    for (const d of [root, join(root, 'blobs'), this.blobsDir, this.tmpDir]) privateDir(d);
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
    const what = expected.what ?? `blob ${expected.digest ?? ''}`.trim();
    return new BlobWriter(
      {
        tmpPath: tempName(this.tmpDir, 'blob'),
        pathOf: (d) => this.blobPath(d),
        dir: this.blobsDir,
        space: new SpaceGuard(this.root, what),
      },
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

  /**
   * A stored blob, whole. With `limit` (see limits.ts) a bigger blob is refused before it is
   * read: `what` names it in the message (e.g. `image config sha256:...`).
   */
  async readBlob(digest: string, limit?: { bytes: number; what: string }): Promise<Buffer> {
    let handle: fs.promises.FileHandle;
    try {
      handle = await fs.promises.open(this.blobPath(digest), 'r');
    } catch (e) {
      throw this.notFound(digest, e);
    }
    try {
      if (limit) {
        const { size } = await handle.stat();
        if (size > limit.bytes) throw tooBig(limit.what, size, limit.bytes);
      }
      return await handle.readFile();
    } finally {
      await handle.close();
    }
  }

  /** A stored blob parsed as JSON, refused unread when bigger than `limit`. */
  async readJson<T>(digest: string, limit?: { bytes: number; what: string }): Promise<T> {
    const data = await this.readBlob(digest, limit);
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
