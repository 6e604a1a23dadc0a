import { spawn } from 'node:child_process';
import type { Cleanups } from '@corral/testkit';
import { until } from '@corral/testkit';

// A program on a pty held by the test, as a user's terminal: what it prints is read as it
// comes, keys are typed at any time, and the terminal is resized (the kernel then sends
// SIGWINCH to the program, as a terminal emulator's resize does). Python's pty module plays
// the terminal; the test talks to it in JSON lines.
const HARNESS = `
import fcntl, json, os, pty, select, struct, sys, termios
rows, cols = int(sys.argv[1]), int(sys.argv[2])
pid, fd = pty.fork()
if pid == 0:
    fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack('HHHH', rows, cols, 0, 0))
    os.execvp(sys.argv[3], sys.argv[3:])
buf = b''
reading = True
while True:
    r, _, _ = select.select([fd] + ([0] if reading else []), [], [])
    if fd in r:
        try:
            d = os.read(fd, 4096)
        except OSError:
            d = b''
        if not d:
            break
        os.write(1, d)
    if 0 in r:
        d = os.read(0, 4096)
        if not d:
            reading = False
            continue
        buf += d
        while b'\\n' in buf:
            line, buf = buf.split(b'\\n', 1)
            m = json.loads(line)
            if 'write' in m:
                os.write(fd, m['write'].encode('latin1'))
            if 'resize' in m:
                fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack('HHHH', m['resize'][0], m['resize'][1], 0, 0))
_, st = os.waitpid(pid, 0)
sys.stderr.write('exit %d\\n' % os.waitstatus_to_exitcode(st))
`;

export interface Terminal {
  /** Everything the program printed so far. */
  out(): string;
  /** Types `keys` (raw bytes, e.g. `\r` for Enter, `\x10` for ctrl-p). */
  type(keys: string): void;
  /** Types `keys`, then waits until the output (after what was there before) matches `expect`. */
  expect(keys: string, expect: RegExp | string, ms?: number): Promise<void>;
  resize(rows: number, cols: number): void;
  /** The program's exit code. */
  exited: Promise<number>;
}

/** Runs argv on a fresh pty of `rows` x `cols`; it is killed at cleanup if still running. */
export function onTerminal(
  c: Cleanups,
  argv: string[],
  env: NodeJS.ProcessEnv,
  size: { rows: number; cols: number } = { rows: 24, cols: 80 },
): Terminal {
  const child = spawn('python3', ['-c', HARNESS, String(size.rows), String(size.cols), ...argv], {
    env,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString('latin1');
  });
  child.stderr.on('data', (d: Buffer) => {
    err += d.toString('latin1');
  });
  child.stdin.on('error', () => {});
  const exited = new Promise<number>((resolve) =>
    child.once('close', () => resolve(Number(/exit (-?\d+)/.exec(err)?.[1] ?? -1))),
  );
  c.add(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  const send = (m: unknown) => child.stdin.write(`${JSON.stringify(m)}\n`);
  const t: Terminal = {
    out: () => out,
    type: (keys) => send({ write: keys }),
    async expect(keys, want, ms = 15_000) {
      const from = out.length;
      if (keys) t.type(keys);
      await until(
        () => (typeof want === 'string' ? out.slice(from).includes(want) : want.test(out.slice(from))),
        `${want} on the terminal (got: ${JSON.stringify(out.slice(from))}; ${err})`,
        ms,
      );
    },
    resize: (rows, cols) => send({ resize: [rows, cols] }),
    exited,
  };
  return t;
}
