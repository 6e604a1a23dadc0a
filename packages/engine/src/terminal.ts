import { closeSync, writeSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { ReadStream } from 'node:tty';
import { setWindowSize } from '@corral/sys';

/**
 * The output side of a container's terminal (the pty master) as a stream. The kernel ends a
 * master with EIO once the program and everything holding the slave are gone: that is the
 * end of the stream, not an error.
 */
export function terminalOutput(master: number): Readable {
  const stream = new ReadStream(master);
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EIO') process.stderr.write(`corral: terminal: ${e.message}\n`);
    stream.destroy();
  });
  return stream;
}

/**
 * Connects this process's terminal to a container's: output to stdout; with `interactive`,
 * keystrokes (raw mode, so ^C reaches the container's foreground job) to the container; the
 * window size follows ours. Returns a function that waits for the output to drain and puts
 * our terminal back.
 */
export function attachTerminal(master: number, interactive: boolean): () => Promise<void> {
  const output = terminalOutput(master);
  const drained = new Promise<void>((resolve) => output.on('close', () => resolve()));
  output.pipe(process.stdout, { end: false });
  const stdin = process.stdin;
  const raw = interactive && stdin.isTTY;
  const onInput = (data: Buffer) => {
    try {
      writeSync(master, data);
    } catch {
      // the container is gone
    }
  };
  if (interactive) {
    if (raw) stdin.setRawMode(true);
    stdin.on('data', onInput);
    stdin.resume();
  }
  const resize = () => {
    if (process.stdout.isTTY) setWindowSize(master, process.stdout.rows, process.stdout.columns);
  };
  process.stdout.on('resize', resize);
  return async () => {
    // What the program wrote last is still in the master: read it before closing. The
    // timeout is for a slave that something in the background keeps open; it gives way to
    // I/O already waiting (setImmediate runs after the poll phase), since a process that
    // was not scheduled for 2 s (a loaded machine) sees its timer before its last reads.
    const timeout = new Promise((r) => setTimeout(() => setImmediate(r), 2000));
    await Promise.race([drained, timeout]);
    process.stdout.off('resize', resize);
    if (interactive) {
      stdin.off('data', onInput);
      if (raw) stdin.setRawMode(false);
      stdin.pause();
    }
    output.destroy();
    try {
      closeSync(master);
    } catch {
      // the stream closed it
    }
  };
}
