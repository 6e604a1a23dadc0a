import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { Engine, ProcessHandle } from '@corral/engine';
import { frame } from './http.js';
import type { Logger } from './log.js';
import type { DaemonOptions } from './server.js';

/** A client attached to a container that has not started yet (docker run attaches, then starts). */
export interface PendingAttach {
  conn: Duplex;
  tty: boolean;
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
}

/** An exec made by POST /containers/{id}/exec, until its container is removed. */
export interface ExecRecord {
  id: string;
  containerId: string;
  cmd: string[];
  env: string[];
  workdir: string;
  user: string;
  tty: boolean;
  attachStdin: boolean;
  attachStdout: boolean;
  attachStderr: boolean;
  running: boolean;
  exitCode: number | null;
  handle: ProcessHandle | null;
  consoleSize?: { cols: number; rows: number };
}

/** What the daemon keeps in memory between requests: attaches waiting for a start, execs. */
export class DaemonState {
  readonly pending = new Map<string, PendingAttach[]>();
  /** Containers this daemon runs attached (stdin to the program): their handles. */
  readonly attached = new Map<string, ProcessHandle>();
  readonly execs = new Map<string, ExecRecord>();

  constructor(
    readonly engine: Engine,
    readonly log: Logger,
    readonly info: DaemonOptions['info'],
  ) {}

  newExecId(): string {
    return randomBytes(32).toString('hex');
  }

  /**
   * POST /start: a container with a client attached that writes its stdin runs attached to
   * this daemon (its streams are the connection's); any other runs under the engine's watcher,
   * and attached clients follow its log from the start.
   */
  async start(id: string): Promise<void> {
    const waiting = this.pending.get(id) ?? [];
    this.pending.delete(id);
    const r = this.engine.get(id);
    const withStdin = waiting.find((a) => a.stdin);
    if (withStdin) {
      const handle = await this.engine.attach(r.id, { stdin: 'pipe', stdout: 'pipe', stderr: 'pipe' });
      this.attached.set(r.id, handle);
      bindHandle(handle, withStdin, r.config.tty);
      for (const a of waiting) if (a !== withStdin) a.conn.end();
      handle
        .wait()
        .catch(() => {})
        .finally(() => this.attached.delete(r.id));
      return;
    }
    // Followers open the log first, so they read every line, however soon the program ends.
    for (const a of waiting) void this.followLog(r.id, a, r.config.tty, undefined, true);
    await this.engine.start(r.id);
  }

  /** Streams a container's log to an attached client until the container ends. */
  async followLog(
    id: string,
    a: PendingAttach,
    tty: boolean,
    tail: number | undefined,
    untilExit = false,
  ): Promise<void> {
    const gone = new AbortController();
    a.conn.once('close', () => gone.abort());
    a.conn.on('error', () => gone.abort());
    a.conn.resume(); // stdin is not taken: a client's input is read and dropped
    try {
      for await (const e of this.engine.logs(id, { follow: true, tail, untilExit })) {
        if (gone.signal.aborted) break;
        if (e.stream === 'stdout' ? !a.stdout : !a.stderr) continue;
        const data = Buffer.from(e.log);
        a.conn.write(tty ? data : frame(e.stream === 'stdout' ? 1 : 2, data));
      }
    } catch (e) {
      this.log.debug(`attach ${id}: ${(e as Error).message}`);
    }
    a.conn.end();
  }
}

/** Binds a program's handle to a hijacked connection: raw with a TTY, multiplexed frames without. */
export function bindHandle(
  handle: ProcessHandle,
  a: { conn: Duplex; stdin: boolean; stdout: boolean; stderr: boolean },
  tty: boolean,
): void {
  const { conn } = a;
  conn.on('error', () => {});
  let open = 0;
  // The stream ends once the output has and the exit is recorded: a client that asks for the
  // exit code right after EOF (docker exec inspects) gets it.
  const ended = () => {
    if (--open <= 0) void handle.wait().finally(() => conn.end());
  };
  if (tty && handle.pty) {
    open = 1;
    handle.pty.output.on('data', (d: Buffer) => conn.write(d));
    handle.pty.output.on('end', ended);
    handle.pty.output.on('error', ended);
    if (a.stdin) conn.pipe(handle.pty.input);
    conn.resume();
    return;
  }
  for (const [s, n] of [
    [handle.stdout, 1],
    [handle.stderr, 2],
  ] as const) {
    if (!s) continue;
    open++;
    const want = n === 1 ? a.stdout : a.stderr;
    s.on('data', (d: Buffer) => {
      if (want && !conn.destroyed) conn.write(tty ? d : frame(n, d));
    });
    s.on('end', ended);
    s.on('error', ended);
  }
  if (open === 0) void handle.wait().then(() => conn.end());
  const stdin = handle.stdin;
  if (stdin && a.stdin) {
    stdin.on('error', () => {});
    conn.on('data', (d: Buffer) => stdin.write(d));
    conn.on('end', () => stdin.end()); // half-close: the client's EOF is the program's
  } else stdin?.end();
  conn.resume();
  // A client that goes away mid-stream leaves the program running, as Docker's attach does;
  // its output is then dropped.
}
