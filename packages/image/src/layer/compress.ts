import { spawn } from 'node:child_process';
import { Transform, type TransformCallback, type Writable } from 'node:stream';
import * as zlib from 'node:zlib';
import { ImageError } from '../errors.js';

export type Compression = 'none' | 'gzip' | 'zstd' | 'xz' | 'bzip2';

/** Tells the compression of a layer from its first bytes. */
export function detectCompression(head: Uint8Array): Compression {
  if (head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) return 'zstd';
  if (head[0] === 0xfd && head[1] === 0x37 && head[2] === 0x7a && head[3] === 0x58) return 'xz';
  // "BZh" and a block size digit.
  if (head[0] === 0x42 && head[1] === 0x5a && head[2] === 0x68 && head[3] >= 0x31 && head[3] <= 0x39)
    return 'bzip2';
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
  return programDecoder(
    'zstd',
    ['-d', '-c', '-q'],
    'a zstd layer needs Node 22.15+ or the zstd program on PATH',
  );
}

/**
 * Decompression by a program (zstd on older Node, xz, bzip2: Node has no decoder for them),
 * streamed through its stdin and stdout.
 */
function programDecoder(program: string, args: string[], missing: string): Decoder {
  const child = spawn(program, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  const done = new Promise<void>((res, rej) => {
    child.on('error', (e) => rej(new ImageError('UNSUPPORTED', `${missing}: ${e.message}`)));
    child.on('close', (code) =>
      code === 0
        ? res()
        : rej(new ImageError('BAD_LAYER', `${program} could not decompress the data: ${stderr.trim()}`)),
    );
  });
  child.stdin.on('error', () => {});
  return { input: child.stdin, output: child.stdout, done };
}

/**
 * A transform that detects gzip / zstd / xz / bzip2 / plain from the first bytes and
 * decompresses accordingly (gzip with zlib; zstd with zlib on new Node, else the zstd
 * program; xz and bzip2 with their programs).
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
    } else if (c === 'zstd') d = zstdDecoder();
    else if (c === 'xz')
      d = programDecoder('xz', ['-d', '-c', '-q'], 'xz data needs the xz program (Debian xz-utils)');
    else d = programDecoder('bzip2', ['-d', '-c', '-q'], 'bzip2 data needs the bzip2 program (Debian bzip2)');
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
