// Output without process.stdout and process.stderr: their first use loads Node's stream
// modules, a few ms of every command. fds 1 and 2 stay as the caller gave them (blocking),
// so a plain write works; one that would block is retried.
import { writeSync } from 'node:fs';

function writeAll(fd: number, text: string): void {
  const data = Buffer.from(text);
  let off = 0;
  while (off < data.length) {
    try {
      off += writeSync(fd, data, off);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EAGAIN') continue;
      if (code === 'EPIPE') return; // the reader went away
      throw e;
    }
  }
}

export const writeOut = (text: string): void => writeAll(1, text);
export const writeErr = (text: string): void => writeAll(2, text);
