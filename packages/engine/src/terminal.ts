import { closeSync, writeSync } from 'node:fs';
import { PassThrough, type Readable, Writable } from 'node:stream';
import { ReadStream } from 'node:tty';
import { setWindowSize } from '@corral/sys';

/**
 * The output side of a container's terminal (the pty master) as a stream. The kernel ends a
 * master with EIO once the program and everything holding the slave are gone: that is the
 * end of the stream, not an error (any other error ends it too, reported to `onError`). The
 * master's own ReadStream would hand that EIO to an async iterator as an error whatever
 * listener it has, so readers get a PassThrough that simply ends.
 */
export function terminalOutput(master: number, onError?: (e: Error) => void): Readable {
  const source = new ReadStream(master);
  const output = new PassThrough();
  source.pipe(output);
  source.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EIO') onError?.(e);
    source.unpipe(output);
    output.end();
  });
  // A reader that gives up (destroy) stops the reads of the master too.
  output.on('close', () => source.destroy());
  return output;
}

/** A container's terminal as a front-end uses it: what it shows, what is typed, its size. */
export interface Pty {
  /** What the program writes to its terminal. */
  output: Readable;
  /** Keystrokes for the program (raw bytes: ^C is 0x03, the terminal makes it SIGINT). */
  input: Writable;
  resize(cols: number, rows: number): void;
}

/**
 * The pty master of a container as a Pty, and `close`, which waits for the last output to be
 * read and closes the master.
 */
export function openPty(master: number): { pty: Pty; close(): Promise<void> } {
  const output = terminalOutput(master);
  const drained = new Promise<void>((resolve) => output.on('close', () => resolve()));
  const input = new Writable({
    write(chunk: Buffer, _enc, done) {
      try {
        writeSync(master, chunk);
      } catch {
        // the container is gone
      }
      done();
    },
  });
  const pty: Pty = {
    output,
    input,
    resize(cols, rows) {
      try {
        setWindowSize(master, rows, cols);
      } catch {
        // the terminal is gone
      }
    },
  };
  return {
    pty,
    async close() {
      // What the program wrote last is still in the master: read it before closing. The
      // timeout is for a slave that something in the background keeps open; it gives way to
      // I/O already waiting (setImmediate runs after the poll phase), since a process that
      // was not scheduled for 2 s (a loaded machine) sees its timer before its last reads.
      const timeout = new Promise((r) => setTimeout(() => setImmediate(r), 2000));
      await Promise.race([drained, timeout]);
      input.destroy();
      output.destroy();
      try {
        closeSync(master);
      } catch {
        // the stream closed it
      }
    },
  };
}
