// Output of the quick commands (ps, images, version) by write(2) on fd 1: process.stdout would
// load Node's stream modules (and net on a pipe, tty on a terminal), several ms of a command
// that is otherwise little more than a Node start (issue 15). runCli flushes the streams at
// exit only if something touched them (watchStdio).
import { writeSync } from 'node:fs';

/** Set once fd 1 would block (a non-blocking pipe) or went: the rest goes through the stream. */
let viaStream = false;
let closed = false;

/** Prints `text` and a newline on stdout, as console.log does. */
export function println(text: string): void {
  if (closed) return;
  const data = Buffer.from(`${text}\n`);
  let off = 0;
  while (!viaStream && off < data.length) {
    try {
      off += writeSync(1, data, off);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EAGAIN') viaStream = true;
      else if (code === 'EPIPE') {
        closed = true; // the reader is gone (`corral ps | head -1`)
        return;
      } else throw e;
    }
  }
  if (off < data.length) process.stdout.write(data.subarray(off));
}

const touched = { stdout: false, stderr: false };

/**
 * Notes when process.stdout or process.stderr is first read (console.log reads it at each
 * call), so that the exit flushes only streams that exist: asking for one makes it.
 */
export function watchStdio(): void {
  for (const name of ['stdout', 'stderr'] as const) {
    const d = Object.getOwnPropertyDescriptor(process, name);
    const get = d?.get;
    if (!d || !get || !d.configurable) {
      touched[name] = true; // cannot tell: flush it
      continue;
    }
    Object.defineProperty(process, name, {
      ...d,
      get() {
        touched[name] = true;
        return get.call(process);
      },
    });
  }
}

/** Writes '' to each stream that exists and calls `done` once all are flushed. */
export function flushStdio(done: () => void): void {
  const err = () => (touched.stderr ? process.stderr.write('', done) : done());
  if (touched.stdout) process.stdout.write('', err);
  else err();
}
