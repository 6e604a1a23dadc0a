import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';

export type DigestAlgorithm = 'sha256' | 'sha512';

export interface HashingOptions {
  /** False: count the bytes only (for a consumer that hashes them itself). */
  hashing?: boolean;
  /** Told the running byte count after each chunk. */
  onBytes?: (total: number) => void;
}

/**
 * The one stream of the package that hashes what passes through it: bytes go on unchanged,
 * `size` counts them and `digest()` gives `ALGORITHM:<hex>` once the stream has ended. A layer's
 * diff ID, a layer uncompressed for an archive and a registry blob checked against its digest
 * (DigestVerifier) are all measured by it.
 */
export class HashingStream extends Transform {
  readonly algorithm: DigestAlgorithm;
  /** Bytes that went through so far. */
  size = 0;
  private readonly hash: Hash | undefined;
  private readonly onBytes: ((total: number) => void) | undefined;

  constructor(algorithm: DigestAlgorithm = 'sha256', options: HashingOptions = {}) {
    super();
    this.algorithm = algorithm;
    this.hash = options.hashing === false ? undefined : createHash(algorithm);
    this.onBytes = options.onBytes;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.size += chunk.length;
    this.hash?.update(chunk);
    this.onBytes?.(this.size);
    done(null, chunk);
  }

  /** True unless made with `hashing: false`. */
  get hashing(): boolean {
    return this.hash !== undefined;
  }

  /** `ALGORITHM:<hex>` of every byte that went through; call once, after the end. */
  digest(): string {
    if (!this.hash) throw new Error('HashingStream made with hashing: false has no digest');
    return `${this.algorithm}:${this.hash.digest('hex')}`;
  }
}
