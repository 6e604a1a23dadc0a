import { spawn } from 'node:child_process';
import { Transform, type TransformCallback, type Writable } from 'node:stream';
import * as zlib from 'node:zlib';
import { ImageError } from '../errors.js';

export type Compression = 'none' | 'gzip' | 'zstd';

/** Tells the compression of a layer from its first bytes. */
export function detectCompression(head: Uint8Array): Compression {
  if (head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) return 'zstd';
  return 'none';
}

interface Decoder {
  input: Writable;
  output: NodeJS.ReadableStream;
  /** Resolves when the decoder has ended cleanly. */
  done: Promise<void>;
}

function zstdDecoder(): Decoder {
  // Node 22.15+ has zstd in zlib; older Node uses the zstd program.
  const create = (zlib as unknown as { createZstdDecompress?: () => Transform }).createZstdDecompress;
  if (create) {
    const z = create();
    return { input: z, output: z, done: new Promise((res, rej) => z.on('end', res).on('error', rej)) };
  }
  const child = spawn('zstd', ['-d', '-c', '-q'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  const done = new Promise<void>((res, rej) => {
    child.on('error', (e) =>
      rej(
        new ImageError(
          'UNSUPPORTED',
          `a zstd layer needs Node 22.15+ or the zstd program on PATH: ${e.message}`,
        ),
      ),
    );
    child.on('close', (code) =>
      code === 0
        ? res()
        : rej(new ImageError('BAD_LAYER', `zstd could not decompress the layer: ${stderr.trim()}`)),
    );
  });
  child.stdin.on('error', () => {});
  return { input: child.stdin, output: child.stdout, done };
}

/**
 * A transform that detects gzip / zstd / plain from the first bytes and decompresses
 * accordingly (gzip with zlib; zstd with zlib on new Node, else the zstd program).
 */
export class Decompress extends Transform {
  compression: Compression | undefined;
  private head: Buffer = Buffer.alloc(0);
  private decoder: Decoder | undefined;

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.compression === undefined) {
      this.head = Buffer.concat([this.head, chunk]);
      if (this.head.length < 4) {
        cb();
        return;
      }
      chunk = this.head;
      this.start(detectCompression(chunk));
    }
    if (!this.decoder) {
      this.push(chunk);
      cb();
      return;
    }
    if (this.decoder.input.write(chunk)) cb();
    else this.decoder.input.once('drain', () => cb());
  }

  override _flush(cb: TransformCallback): void {
    if (this.compression === undefined) {
      this.start(detectCompression(this.head));
      if (!this.decoder) this.push(this.head);
      else this.decoder.input.write(this.head);
    }
    if (!this.decoder) {
      cb();
      return;
    }
    this.decoder.input.end();
    this.decoder.done.then(
      () => cb(),
      (e) =>
        cb(
          e instanceof ImageError
            ? e
            : new ImageError('BAD_LAYER', `cannot decompress the layer (${this.compression}): ${e.message}`),
        ),
    );
  }

  private start(c: Compression): void {
    this.compression = c;
    if (c === 'none') return;
    let d: Decoder;
    if (c === 'gzip') {
      // Big output pieces: fewer callbacks on the event loop per MiB.
      const z = zlib.createGunzip({ chunkSize: 256 * 1024 });
      d = { input: z, output: z, done: new Promise((res, rej) => z.on('end', res).on('error', rej)) };
    } else d = zstdDecoder();
    d.output.on('data', (b: Buffer) => this.push(b));
    d.done.catch((e) =>
      this.destroy(
        e instanceof ImageError
          ? e
          : new ImageError('BAD_LAYER', `cannot decompress the layer (${c}): ${e.message}`),
      ),
    );
    this.decoder = d;
  }
}
