// Binds a program the engine runs (a ProcessHandle) to this process: its stdio, its terminal
// and the signals it receives. The engine never touches them; this is the CLI's half.
import { isatty } from 'node:tty';
import type { ProcessHandle } from '@corral/engine';

/** The signals passed on to the program (Docker's sig-proxy). */
export const PROXIED_SIGNALS: NodeJS.Signals[] = [
  'SIGINT',
  'SIGTERM',
  'SIGHUP',
  'SIGQUIT',
  'SIGUSR1',
  'SIGUSR2',
];

/**
 * This terminal's size, when stdout is one. process.stdout is made only then: making it (a
 * stream, with its modules) costs a run in a pipe or a file a few ms for nothing (issue 15).
 */
export function consoleSize(): { cols: number; rows: number } | undefined {
  if (!isatty(1)) return undefined;
  const out = process.stdout;
  return out.isTTY ? { cols: out.columns, rows: out.rows } : undefined;
}

/** Calls `on` for each proxied signal this process receives until the returned function is called. */
export function onSignals(on: (sig: NodeJS.Signals) => void): () => void {
  for (const s of PROXIED_SIGNALS) process.on(s, on);
  return () => {
    for (const s of PROXIED_SIGNALS) process.off(s, on);
  };
}

/**
 * Connects a handle to this process until the program ends, and resolves with its exit code:
 * the terminal (output to stdout; with `interactive`, keystrokes in raw mode so ^C reaches the
 * container's foreground job; the window size follows ours) and signals. Streams the engine
 * was told to give our own fds need nothing here.
 */
export async function bindHandle(
  handle: ProcessHandle,
  interactive: boolean,
  /** false (--sig-proxy=false): the signals are ignored here, the program never gets them. */
  forwardSignals = true,
): Promise<number> {
  const stop = onSignals((sig) => forwardSignals && handle.signal(sig));
  const pty = handle.pty;
  // Only a terminal's keystrokes are read here (process.stdin is made only then: see consoleSize).
  const stdin = pty && interactive ? process.stdin : null;
  const raw = stdin?.isTTY === true;
  const onInput = (data: Buffer) => pty?.input.write(data);
  const resize = () => {
    const size = consoleSize();
    if (size) handle.resize(size.cols, size.rows);
  };
  if (pty) {
    pty.output.pipe(process.stdout, { end: false });
    if (stdin) {
      if (raw) stdin.setRawMode(true);
      stdin.on('data', onInput);
      stdin.resume();
    }
    process.stdout.on('resize', resize);
  }
  try {
    return await handle.wait();
  } finally {
    stop();
    if (pty) {
      process.stdout.off('resize', resize);
      if (stdin) {
        stdin.off('data', onInput);
        if (raw) stdin.setRawMode(false);
        stdin.pause();
      }
    }
  }
}
