// The stdin of a detached container started with -i (Docker's OpenStdin): its keeper holds the
// write end of the program's stdin pipe and serves a unix socket, `stdin.sock` in the
// container's folder, that attached clients write to (corrald's attach, live-restored or not).
// The bytes a client sends go to the program as they are; a client that ends its input ends
// the program's stdin only with stdinOnce (`docker run -i` without -d), as Docker does.
import { closeSync, createWriteStream, openSync, rmSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import type { Writable } from 'node:stream';

export const STDIN_SOCKET = 'stdin.sock';

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

/** The keeper's end: serves `stdin` on the folder's socket; resolves once it listens. */
export function serveStdin(dir: string, stdin: Writable, once: boolean): Promise<void> {
  rmSync(join(dir, STDIN_SOCKET), { force: true }); // a previous run's
  const where = shortPath(dir);
  let open = true;
  const server = createServer((conn) => {
    conn.on('error', () => {});
    if (!open) return conn.destroy();
    conn.pipe(stdin, { end: false });
    conn.on('end', () => {
      conn.unpipe(stdin);
      if (once && open) {
        open = false;
        stdin.end();
        server.close();
      }
      conn.end();
    });
  });
  // The program closed its stdin or ended: nothing more to write to.
  stdin.on('error', () => {
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
      resolve();
    });
  });
}

/** A terminal's input (its master fd, which the stream closes) as a stream to serve. */
export function terminalInput(fd: number): Writable {
  return createWriteStream('', { fd });
}

/** A client's end: a socket whose writes reach the program's stdin (see serveStdin). */
export function connectStdin(dir: string): Promise<Socket> {
  const where = shortPath(dir);
  return new Promise((resolve, reject) => {
    const s = connect(where.path);
    s.once('connect', () => {
      where.close();
      resolve(s);
    });
    s.once('error', (e) => {
      where.close();
      reject(e);
    });
  });
}
