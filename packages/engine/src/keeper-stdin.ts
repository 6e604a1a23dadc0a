// The input side of a detached container, kept by its keeper: the write end of the program's
// stdin pipe (a -i container, Docker's OpenStdin) or its terminal's master (-t). The keeper
// serves a unix socket, `stdin.sock` in the container's folder, that attached clients
// (corrald's attach, live-restored or not) talk to in frames, both ends in this module: input
// bytes for the program, the end of the client's input, and the terminal's size. A connection
// that just closes (a client killed, a daemon SIGKILLed, a detach) ends nothing: only an end
// frame ends the program's stdin, and only for stdinOnce (`docker run -i` without -t), as
// Docker closes it when that client's input ends.
import { closeSync, createWriteStream, openSync, rmSync, writeSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { setWindowSize } from '@corral/sys';

export const STDIN_SOCKET = 'stdin.sock';

/** What a client sends: a type byte, a 32-bit big-endian payload length, the payload. */
export type StdinFrame =
  | { type: 'data'; data: Buffer }
  | { type: 'end' }
  | { type: 'resize'; cols: number; rows: number };

const DATA = 0x64; // 'd'
const END = 0x65; // 'e'
const RESIZE = 0x72; // 'r'
const HEADER = 5;
/** Larger payloads are a broken client: its connection is closed. */
const MAX_PAYLOAD = 1 << 20;

export function encodeFrame(f: StdinFrame): Buffer {
  const payload = f.type === 'data' ? f.data : f.type === 'resize' ? Buffer.alloc(4) : Buffer.alloc(0);
  if (f.type === 'resize') {
    payload.writeUInt16BE(Math.min(f.rows, 0xffff), 0);
    payload.writeUInt16BE(Math.min(f.cols, 0xffff), 2);
  }
  const head = Buffer.alloc(HEADER);
  head[0] = f.type === 'data' ? DATA : f.type === 'end' ? END : RESIZE;
  head.writeUInt32BE(payload.length, 1);
  return Buffer.concat([head, payload]);
}

/** Splits a byte stream into frames; throws on one it does not know (the connection is then closed). */
export class FrameReader {
  private buf: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): StdinFrame[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out: StdinFrame[] = [];
    while (this.buf.length >= HEADER) {
      const type = this.buf[0];
      const len = this.buf.readUInt32BE(1);
      if (len > MAX_PAYLOAD || (type !== DATA && type !== END && type !== RESIZE))
        throw new Error(`bad stdin frame (type ${type}, ${len} bytes)`);
      if (this.buf.length < HEADER + len) break;
      const payload = this.buf.subarray(HEADER, HEADER + len);
      this.buf = this.buf.subarray(HEADER + len);
      if (type === DATA) out.push({ type: 'data', data: Buffer.from(payload) });
      else if (type === END) out.push({ type: 'end' });
      else if (len === 4)
        out.push({ type: 'resize', rows: payload.readUInt16BE(0), cols: payload.readUInt16BE(2) });
      else throw new Error('bad resize frame');
    }
    return out;
  }
}

/**
 * The socket's path through /proc/self/fd of an open fd of its folder: short whatever the
 * folder's length (a sockaddr_un holds 108 bytes; a data root plus a 64-hex id may not fit).
 */
function shortPath(dir: string): { path: string; close(): void } {
  const fd = openSync(dir, 'r');
  let closed = false;
  const close = () => {
    // Once only: a second close could hit an fd reused meanwhile.
    if (!closed) closeSync(fd);
    closed = true;
  };
  return { path: `/proc/self/fd/${fd}/${STDIN_SOCKET}`, close };
}

/** What a keeper serves: the program's input (null: a terminal without -i, sizes only). */
export interface KeptInput {
  input: Writable | null;
  /** The terminal's master, for sizes (a -t container). */
  terminal: number | null;
  /** stdinOnce: an end frame ends the program's input, and the socket with it. */
  once: boolean;
}

/**
 * The keeper's end: serves `kept` on the folder's socket; resolves once it listens, with a
 * `close` for when the program has ended (a restart serves its next run's input anew).
 */
export function serveStdin(dir: string, kept: KeptInput): Promise<{ close(): void }> {
  rmSync(join(dir, STDIN_SOCKET), { force: true }); // a previous run's
  const where = shortPath(dir);
  const { input, terminal } = kept;
  let open = true;
  const server = createServer((conn) => {
    conn.on('error', () => {});
    if (!open) return conn.destroy();
    const reader = new FrameReader();
    conn.on('data', (chunk: Buffer) => {
      let frames: StdinFrame[];
      try {
        frames = reader.push(chunk);
      } catch {
        return conn.destroy();
      }
      for (const f of frames) {
        if (f.type === 'data') {
          // Input waits while the program does not read (the pipe or terminal is full).
          if (open && input && !input.write(f.data)) {
            conn.pause();
            input.once('drain', () => conn.resume());
          }
        } else if (f.type === 'resize') {
          if (terminal !== null) {
            try {
              setWindowSize(terminal, f.rows, f.cols);
            } catch {
              // the terminal is gone
            }
          }
        } else {
          if (kept.once && open && input) {
            open = false;
            input.end();
            server.close();
          }
          conn.end();
        }
      }
    });
    conn.on('end', () => conn.end());
  });
  // The program closed its stdin or ended: nothing more to write to.
  input?.on('error', () => {
    open = false;
    server.close();
  });
  // The keeper lives as long as its container, not as long as this socket.
  server.unref();
  return new Promise((resolve, reject) => {
    server.once('error', (e) => {
      where.close();
      reject(e);
    });
    server.listen(where.path, () => {
      where.close();
      resolve({
        close() {
          open = false;
          server.close();
        },
      });
    });
  });
}

/** A terminal's input (its master fd, which the stream closes) as a stream to serve. */
export function terminalInput(fd: number): Writable {
  return createWriteStream('', { fd });
}

/** A terminal's input written to a master fd that something else closes (the log's reader). */
export function terminalWriter(fd: number): Writable {
  return new Writable({
    write(chunk: Buffer, _enc, done) {
      try {
        writeSync(fd, chunk);
      } catch {
        // the terminal is gone
      }
      done();
    },
  });
}

/**
 * A client's end of a kept input: what is written reaches the program; `end()` ends its input
 * (with stdinOnce; else it only leaves), `leave()` goes without ending it (a detach), `resize`
 * sets the terminal's size.
 */
export class KeptStdin extends Writable {
  constructor(readonly socket: Socket) {
    super();
    socket.on('error', (e) => this.destroy(e));
    socket.on('close', () => this.destroy());
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, done: (e?: Error | null) => void): void {
    this.socket.write(encodeFrame({ type: 'data', data: chunk }), done);
  }

  override _final(done: (e?: Error | null) => void): void {
    this.socket.end(encodeFrame({ type: 'end' }), done);
  }

  override _destroy(e: Error | null, done: (e?: Error | null) => void): void {
    this.socket.destroy();
    done(e);
  }

  resize(cols: number, rows: number): void {
    if (!this.socket.destroyed) this.socket.write(encodeFrame({ type: 'resize', cols, rows }));
  }

  /** Goes, leaving the program's input open (what was written is sent first). */
  leave(): void {
    if (!this.socket.destroyed) this.socket.end();
  }
}

/** Connects to a container's kept input (see serveStdin). */
export function connectStdin(dir: string): Promise<KeptStdin> {
  const where = shortPath(dir);
  return new Promise((resolve, reject) => {
    const s = connect(where.path);
    s.once('connect', () => {
      where.close();
      resolve(new KeptStdin(s));
    });
    s.once('error', (e) => {
      where.close();
      reject(e);
    });
  });
}
