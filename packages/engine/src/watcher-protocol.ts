// The protocol between Engine.start (the parent) and the container's watcher (shim.ts), on
// the watcher's fd 3: one message, one JSON line, then the fd is closed. Both ends use this
// module, as the runtime's sync.ts does for its init.
import { closeSync, writeSync } from 'node:fs';
import type { Readable } from 'node:stream';
import type { ErrorKind } from '@corral/sys';

/** What the watcher reports once: the program runs, or the launch failed and why. */
export type WatcherMessage = { type: 'started' } | { type: 'failed'; kind: ErrorKind; message: string };

/** The fd the watcher writes on (the parent's 4th stdio entry, a pipe). */
export const WATCHER_FD = 3;

/** The watcher's end: writes its one message and closes the fd. */
export function reportToParent(msg: WatcherMessage, fd = WATCHER_FD): void {
  try {
    writeSync(fd, `${JSON.stringify(msg)}\n`);
  } finally {
    closeSync(fd);
  }
}

/**
 * The parent's end: the message, or null when the pipe ends without one (the watcher died
 * first). A malformed message is reported as a failure, not thrown.
 */
export function readWatcherMessage(pipe: Readable): Promise<WatcherMessage | null> {
  return new Promise((resolve) => {
    let buf = '';
    const done = (m: WatcherMessage | null) => {
      pipe.off('data', onData);
      resolve(m);
    };
    const onData = (d: Buffer) => {
      buf += d.toString('utf8');
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      try {
        const m = JSON.parse(buf.slice(0, nl)) as WatcherMessage;
        if (m.type === 'started' || (m.type === 'failed' && typeof m.message === 'string')) return done(m);
      } catch {
        // below
      }
      done({
        type: 'failed',
        kind: 'CannotStart',
        message: `bad message from the watcher: ${buf.slice(0, nl)}`,
      });
    };
    pipe.on('data', onData);
    pipe.on('end', () => done(null));
    pipe.on('close', () => done(null));
    pipe.on('error', () => done(null));
  });
}
