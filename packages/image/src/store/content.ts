import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { ImageError } from '../errors.js';
import { digestHex } from './digest.js';
import { fsyncDir, tempName } from './fsutil.js';

/** What a blob must be, when known. */
export interface BlobExpectation {
  digest?: string;
  size?: number;
}

export interface BlobInfo {
  digest: string;
  size: number;
}

/** Data to store: a buffer, a Node stream or any async iterable of bytes (e.g. a tar entry). */
export type BlobSource = Buffer | Uint8Array | Readable | AsyncIterable<Uint8Array>;

/**
 * Blobs addressed by sha256 under `ROOT/blobs/sha256/<hex>`. A write streams to a temp
 * file while hashing, checks digest and size, fsyncs and renames: a blob is either whole
 * and verified or absent.
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
    const fd = fs.openSync(tmp, 'wx', 0o644);
    const hash = createHash('sha256');
    let size = 0;
    try {
      const write = (chunk: Uint8Array) => {
        hash.update(chunk);
        size += chunk.byteLength;
        if (expected.size !== undefined && size > expected.size) {
          throw new ImageError(
            'SIZE_MISMATCH',
            `blob ${expected.digest ?? ''} is larger than the expected ${expected.size} bytes; refusing it`,
          );
        }
        let off = 0;
        while (off < chunk.byteLength) off += fs.writeSync(fd, chunk, off);
      };
      if (source instanceof Uint8Array) write(source);
      else
        for await (const chunk of source as AsyncIterable<Uint8Array | string>)
          write(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
      fs.fsyncSync(fd);
    } catch (e) {
      fs.closeSync(fd);
      fs.rmSync(tmp, { force: true });
      throw e;
    }
    fs.closeSync(fd);
    const digest = `sha256:${hash.digest('hex')}`;
    const fail = (err: ImageError): never => {
      fs.rmSync(tmp, { force: true });
      throw err;
    };
    if (expected.digest !== undefined && digest !== expected.digest) {
      fail(
        new ImageError(
          'DIGEST_MISMATCH',
          `blob digest mismatch: expected ${expected.digest}, got ${digest} (${size} bytes); the data is corrupt or not what was asked for, nothing was stored`,
        ),
      );
    }
    if (expected.size !== undefined && size !== expected.size) {
      fail(
        new ImageError(
          'SIZE_MISMATCH',
          `blob ${digest} has ${size} bytes, expected ${expected.size}; nothing was stored`,
        ),
      );
    }
    const dest = this.blobPath(digest);
    if (fs.existsSync(dest)) {
      fs.rmSync(tmp, { force: true });
    } else {
      fs.renameSync(tmp, dest);
      fsyncDir(this.blobsDir);
    }
    return { digest, size };
  }

  openBlob(digest: string): Readable {
    const path = this.blobPath(digest);
    if (!fs.existsSync(path)) throw this.notFound(digest);
    return fs.createReadStream(path);
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
