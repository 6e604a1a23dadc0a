// A foreground `run -t` or `exec -t` without --console-socket: corral-runtime itself relays
// between its own stdin/stdout and the container's terminal, as runc does.
import { closeSync } from 'node:fs';
import tty from 'node:tty';

export function relayTerminal(master: number): { done: Promise<void>; resize(): void } {
  const input = new tty.ReadStream(master);
  const output = new tty.WriteStream(master);
  const stdin = process.stdin;
  const raw = stdin.isTTY === true;
  if (raw) stdin.setRawMode(true);
  const resize = () => {
    const out = process.stdout;
    if (!out.isTTY) return;
    import('@corral/sys').then(({ setWindowSize }) => {
      try {
        setWindowSize(master, out.rows, out.columns);
      } catch {
        // the terminal is gone
      }
    });
  };
  resize();
  stdin.pipe(output);
  const done = new Promise<void>((resolve) => {
    input.on('data', (d) => process.stdout.write(d));
    // The pty master reads EIO once the last slave fd closes: the container is done.
    const end = () => {
      if (raw) stdin.setRawMode(false);
      stdin.unpipe(output);
      stdin.pause();
      input.destroy();
      try {
        closeSync(master);
      } catch {
        // closed by the stream already
      }
      resolve();
    };
    input.on('error', end);
    input.on('end', end);
    input.on('close', end);
  });
  return { done, resize };
}
