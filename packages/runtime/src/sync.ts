import { readSync, writeSync } from 'node:fs';

/** Messages between the runtime and a container's init on the sync socket, one JSON per line. */
export type InitMessage =
  | { type: 'ready'; terminalFd?: number | null }
  /** From the init, before pivot_root: run the prestart and createRuntime hooks, then answer "go". */
  | { type: 'hooks' }
  /** From the exec helper: the program runs, with this PID on the host. */
  | { type: 'started'; pid: number }
  | { type: 'error'; message: string; exitCode: number };

/** The other end of the sync socket closed before a whole line came. */
export class SyncClosedError extends Error {
  constructor() {
    super('the runtime closed the sync socket');
  }
}

/** Blocking read of one line from `fd` (the init side is synchronous by design). */
export function readLineSync(fd: number): string {
  const chunks: Buffer[] = [];
  const buf = Buffer.alloc(65536);
  for (;;) {
    let n: number;
    try {
      n = readSync(fd, buf, 0, buf.length, null);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EAGAIN') continue;
      throw e;
    }
    if (n === 0) throw new SyncClosedError();
    const nl = buf.subarray(0, n).indexOf(10);
    if (nl >= 0) {
      chunks.push(Buffer.from(buf.subarray(0, nl)));
      return Buffer.concat(chunks).toString('utf8');
    }
    chunks.push(Buffer.from(buf.subarray(0, n)));
  }
}

export function writeLineSync(fd: number, message: unknown): void {
  const data = Buffer.from(`${JSON.stringify(message)}\n`);
  let off = 0;
  while (off < data.length) off += writeSync(fd, data, off);
}
