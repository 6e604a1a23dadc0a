// A program running under corrald (an attached run, an exec) as the engine's ProcessHandle, so
// that the commands bind it to this process (attach.ts) exactly as a local one: its output read
// off a hijacked connection (Docker's 8-byte frames, or raw bytes with a TTY), stdin written to
// it with a half-close at EOF, signals and resizes sent as requests.
import type { Socket } from 'node:net';
import { PassThrough, type Readable, type Writable } from 'node:stream';
import type { AttachOptions, ProcessHandle } from '@corral/engine';

/** Docker's multiplexed stream: each frame's payload to `on` with its stream (1 out, 2 err). */
export function demux(source: Readable, on: (stream: number, data: Buffer) => void): void {
  let buf: Buffer = Buffer.alloc(0);
  source.on('data', (chunk: Buffer) => {
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    while (buf.length >= 8) {
      const size = buf.readUInt32BE(4);
      if (buf.length < 8 + size) break;
      on(buf[0], buf.subarray(8, 8 + size));
      buf = buf.subarray(8 + size);
    }
  });
}

/** Where output for a target goes: this process's stdout or stderr by fd, a pipe, or nowhere. */
function sink(target: AttachOptions['stdout']): { write: (d: Buffer) => void; pipe: PassThrough | null } {
  if (target === 1) return { write: (d) => process.stdout.write(d), pipe: null };
  if (target === 2) return { write: (d) => process.stderr.write(d), pipe: null };
  if (target === 'pipe') {
    const p = new PassThrough();
    return { write: (d) => p.write(d), pipe: p };
  }
  return { write: () => {}, pipe: null };
}

export interface RemoteProgram {
  id: string;
  socket: Socket;
  /** The stream is raw (the program has a TTY), not multiplexed. */
  raw: boolean;
  io: AttachOptions;
  /** The exit code, once the output has ended (asked after it for an exec). */
  exitCode: () => Promise<number>;
  resize(cols: number, rows: number): void;
  signal(sig: string | number): void;
}

/** A handle over a hijacked connection; `wait` resolves once the output is all written. */
export function remoteHandle(p: RemoteProgram): ProcessHandle {
  const { socket } = p;
  socket.on('error', () => {});
  const ended = new Promise<void>((resolve) => {
    socket.once('end', resolve);
    socket.once('close', resolve);
  });
  let pty: ProcessHandle['pty'] = null;
  let stdin: Writable | null = null;
  let stdout: Readable | null = null;
  let stderr: Readable | null = null;
  let release = () => {};
  if (p.raw) {
    const output = new PassThrough();
    socket.on('data', (d: Buffer) => output.write(d));
    void ended.then(() => output.end());
    pty = { output, input: socket, resize: (c, r) => p.resize(c, r) };
  } else {
    const out = sink(p.io.stdout);
    const err = sink(p.io.stderr);
    stdout = out.pipe;
    stderr = err.pipe;
    demux(socket, (n, d) => (n === 2 ? err : out).write(d));
    void ended.then(() => {
      out.pipe?.end();
      err.pipe?.end();
    });
    if (p.io.stdin === 0) {
      // Our stdin to the program; its EOF is the connection's half-close, the program's EOF.
      const input = process.stdin;
      const onEnd = () => socket.end();
      input.pipe(socket, { end: false });
      input.once('end', onEnd);
      release = () => {
        input.unpipe(socket);
        input.off('end', onEnd);
        input.pause();
      };
    } else if (p.io.stdin === 'pipe') stdin = socket;
  }
  let result: Promise<number> | null = null;
  return {
    id: p.id,
    stdin,
    stdout,
    stderr,
    pty,
    resize: (cols, rows) => p.resize(cols, rows),
    signal: (sig) => p.signal(sig),
    wait() {
      result ??= ended
        .then(() => p.exitCode())
        .finally(() => {
          release();
          socket.destroy();
        });
      return result;
    },
  };
}
