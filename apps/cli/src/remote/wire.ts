// HTTP/1.1 to corrald over its unix socket on node:net alone: one request per connection
// (Connection: close), bodies framed by Content-Length or chunked, and the upgrade (101) that
// hands the socket over for attach and exec. node:http's client cost every remote command 50-60
// ms of CPU here on its first request (its agent, parser and their modules), which is more than
// this needs.
import { connect, type Socket } from 'node:net';
import { PassThrough, Readable, Transform, type TransformCallback } from 'node:stream';

/** Response headers, names in lower case (repeated ones joined by ", "). */
export type WireHeaders = Record<string, string | undefined>;

/** An answer's status, headers and body (a stream; destroying it closes the connection). */
export interface WireResponse extends Readable {
  statusCode: number;
  headers: WireHeaders;
}

export interface WireRequest {
  method: string;
  /** The path and query. */
  path: string;
  headers: Record<string, string | number>;
  /** A whole body, or a stream sent chunked. */
  body?: Buffer | Readable;
  /** Ask for the connection (`Upgrade: tcp`, given in `headers`): kept open after a 101. */
  upgrade?: boolean;
}

export type WireAnswer =
  | { kind: 'response'; res: WireResponse }
  | { kind: 'upgrade'; headers: WireHeaders; socket: Socket };

/** Headers longer than this are not corrald's. */
const MAX_HEAD = 64 * 1024;

/** Sends one request; resolves at the answer's headers, rejects when the socket fails before. */
export function send(socketPath: string, r: WireRequest): Promise<WireAnswer> {
  return new Promise((resolve, reject) => {
    const socket = connect(socketPath);
    let settled = false;
    const fail = (e: Error) => {
      if (settled) return;
      settled = true;
      socket.destroy();
      reject(e);
    };
    const closed = () => fail(Object.assign(new Error('corrald closed the connection'), { code: 'EPIPE' }));
    socket.once('error', fail);
    socket.once('end', closed);
    socket.once('connect', () => {
      const lines = [`${r.method} ${r.path} HTTP/1.1`, 'Host: corrald'];
      if (!r.upgrade) lines.push('Connection: close');
      for (const [k, v] of Object.entries(r.headers)) lines.push(`${k}: ${v}`);
      socket.write(`${lines.join('\r\n')}\r\n\r\n`);
      if (r.body instanceof Readable) r.body.pipe(new ChunkedEncoder()).pipe(socket, { end: false });
      else if (r.body?.length) socket.write(r.body);
    });
    let head: Buffer = Buffer.alloc(0);
    const onData = (d: Buffer) => {
      head = head.length ? Buffer.concat([head, d]) : d;
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) {
        if (head.length > MAX_HEAD) fail(new Error('corrald sent headers too long'));
        return;
      }
      socket.off('data', onData);
      socket.pause();
      const [status, ...lines] = head.subarray(0, end).toString('latin1').split('\r\n');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(status);
      if (!m) return fail(new Error(`corrald answered something else than HTTP: ${status.slice(0, 80)}`));
      const headers: WireHeaders = {};
      for (const line of lines) {
        const i = line.indexOf(':');
        if (i <= 0) continue;
        const k = line.slice(0, i).trim().toLowerCase();
        const v = line.slice(i + 1).trim();
        headers[k] = headers[k] === undefined ? v : `${headers[k]}, ${v}`;
      }
      const rest = head.subarray(end + 4);
      settled = true;
      socket.off('end', closed);
      socket.off('error', fail);
      const statusCode = Number(m[1]);
      if (statusCode === 101) {
        if (rest.length) socket.unshift(rest);
        // Neither flowing nor paused: the taker's first 'data' listener starts it (as node:http).
        (socket as unknown as { readableFlowing: boolean | null }).readableFlowing = null;
        resolve({ kind: 'upgrade', headers, socket });
      } else resolve({ kind: 'response', res: bodyOf(socket, rest, statusCode, headers, r.method) });
    };
    socket.on('data', onData);
  });
}

function bodyOf(
  socket: Socket,
  rest: Buffer,
  statusCode: number,
  headers: WireHeaders,
  method: string,
): WireResponse {
  const out = new PassThrough() as unknown as WireResponse & PassThrough;
  out.statusCode = statusCode;
  out.headers = headers;
  out.once('close', () => socket.destroy());
  socket.on('error', (e) => out.destroy(e));
  if (method === 'HEAD' || statusCode === 204 || statusCode === 304) {
    socket.destroy();
    out.end();
    return out;
  }
  if (rest.length) socket.unshift(rest);
  const chunked = /\bchunked\b/i.test(headers['transfer-encoding'] ?? '');
  const length = headers['content-length'];
  const framing = chunked ? new ChunkedDecoder() : length !== undefined ? new Limit(Number(length)) : null;
  // Each pipe ends its destination itself ({ end: false }): pipe's own end looks at
  // process.stdout and process.stderr, which makes both streams (a few ms of every command).
  const from = framing ?? socket;
  if (framing) {
    // Framing that ends before the connection does ends the body there.
    framing.once('end', () => socket.destroy());
    socket.pipe(framing, { end: false });
    socket.once('end', () => framing.end());
  }
  from.pipe(out, { end: false });
  from.once('end', () => out.end());
  socket.resume();
  return out;
}

/** A stream as HTTP chunks, and the last (empty) one at its end. */
class ChunkedEncoder extends Transform {
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    if (chunk.length)
      this.push(Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, CRLF]));
    done();
  }

  override _flush(done: TransformCallback): void {
    this.push('0\r\n\r\n');
    done();
  }
}

const CRLF = Buffer.from('\r\n');

/** The first `n` bytes, then the end. */
class Limit extends Transform {
  constructor(private left: number) {
    super();
    if (!(left > 0)) this.push(null);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    if (this.left <= 0) {
      done();
      return;
    }
    const part = chunk.length > this.left ? chunk.subarray(0, this.left) : chunk;
    this.left -= part.length;
    this.push(part);
    if (this.left === 0) this.push(null);
    done();
  }
}

/** A chunked body decoded: size lines, data, and the end at the empty chunk. */
class ChunkedDecoder extends Transform {
  #buf: Buffer = Buffer.alloc(0);
  /** Bytes of data left in the current chunk; -1 while reading a size line. */
  #left = -1;
  #ended = false;

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    if (this.#ended) {
      done();
      return;
    }
    this.#buf = this.#buf.length ? Buffer.concat([this.#buf, chunk]) : chunk;
    for (;;) {
      if (this.#left < 0) {
        const nl = this.#buf.indexOf(CRLF);
        if (nl < 0) break;
        const size = Number.parseInt(this.#buf.subarray(0, nl).toString('latin1').split(';')[0], 16);
        if (!Number.isFinite(size) || size < 0) {
          done(new Error('corrald sent a bad chunk size'));
          return;
        }
        this.#buf = this.#buf.subarray(nl + 2);
        if (size === 0) {
          this.#ended = true;
          this.push(null);
          break;
        }
        this.#left = size;
      }
      if (this.#left > 0) {
        if (!this.#buf.length) break;
        const part = this.#buf.subarray(0, this.#left);
        this.#buf = this.#buf.subarray(part.length);
        this.#left -= part.length;
        this.push(part);
      }
      if (this.#left === 0) {
        if (this.#buf.length < 2) break;
        this.#buf = this.#buf.subarray(2); // the chunk's CRLF
        this.#left = -1;
      }
    }
    done();
  }
}
