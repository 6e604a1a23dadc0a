import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { DetachFilter, type Engine, type KeptStdin, type ProcessHandle } from '@corral/engine';
import { frame } from './http.js';
import type { Logger } from './log.js';
import { drained, framesOf } from './log-frames.js';
import type { DaemonOptions } from './server.js';

/** A client attached to a container that has not started yet (docker run attaches, then starts). */
export interface PendingAttach {
  conn: Duplex;
  tty: boolean;
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
  /** With a TTY: the detach sequence (attach's `detachKeys`, ctrl-p,ctrl-q by default). */
  detachKeys?: Buffer;
  /** The client's input ended before the start (`docker run -i < /dev/null`). */
  inputEnded?: boolean;
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
  /** ExecConfig.DetachKeys as given ('' for the default). */
  detachKeys: string;
}

/** What the daemon keeps in memory between requests: attaches waiting for a start, execs. */
export class DaemonState {
  readonly pending = new Map<string, PendingAttach[]>();
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
   * POST /start: every container runs under its keeper, which keeps its log and (with -i or
   * -t) its input; attached clients follow the log from the first line, and a client that
   * writes stdin (`docker run -i`) writes to the keeper's. So the container outlives this
   * daemon (SIGKILLed, restarted) and a client's detach or going away, as with dockerd.
   */
  async start(id: string): Promise<void> {
    const waiting = this.pending.get(id) ?? [];
    this.pending.delete(id);
    const r = this.engine.get(id);
    const withStdin = r.config.openStdin ? waiting.find((a) => a.stdin || a.inputEnded) : undefined;
    // Followers open the log first, so they read every line, however soon the program ends.
    for (const a of waiting) void this.followLog(r.id, a, r.config.tty, undefined, true, a === withStdin);
    await this.engine.start(r.id);
    if (!withStdin) return;
    const kept = await this.engine.stdin(r.id).catch((e: Error) => {
      // It ended before its input was reached (a program that reads none): nothing to write to.
      this.log.debug(`attach ${r.id}: ${e.message}`);
      withStdin.conn.resume();
      return null;
    });
    const once = r.config.stdinOnce === true && !r.config.tty;
    // An input that ended before the start (or a client gone already) is the program's EOF as
    // soon as it runs (stdinOnce).
    if (kept && (withStdin.inputEnded || withStdin.conn.destroyed)) once ? kept.end() : kept.leave();
    else if (kept) bindInput(withStdin, kept, once);
  }

  /** Streams a container's log to an attached client until the container ends. */
  async followLog(
    id: string,
    a: PendingAttach,
    tty: boolean,
    tail: number | undefined,
    untilExit = false,
    /** The client's input goes to the program (bindInput): not read here. */
    takesInput = false,
  ): Promise<void> {
    const gone = new AbortController();
    a.conn.once('close', () => gone.abort());
    a.conn.on('error', () => gone.abort());
    if (!takesInput) a.conn.resume(); // stdin is not taken: a client's input is read and dropped
    try {
      // One write per read of the log; a client slower than the program is waited for (the
      // log keeps the rest), not buffered here.
      for await (const batch of this.engine.logBatches(id, { follow: true, tail, untilExit })) {
        if (gone.signal.aborted) break;
        const data = framesOf(batch, { tty, stdout: a.stdout, stderr: a.stderr });
        if (data && !a.conn.write(data)) await drained(a.conn, gone.signal);
      }
    } catch (e) {
      this.log.debug(`attach ${id}: ${(e as Error).message}`);
    }
    a.conn.end();
  }
}

/**
 * A client's input to a container's kept input. With a TTY the detach keys end the attachment
 * (the container runs on); the client's EOF ends the program's stdin only with `once`
 * (stdinOnce without a TTY, as dockerd), and a client that goes leaves it open.
 */
export function bindInput(a: PendingAttach, kept: KeptStdin, once: boolean): void {
  const { conn } = a;
  kept.on('error', () => {});
  const filter = a.tty && a.detachKeys ? new DetachFilter(a.detachKeys) : null;
  const onData = (b: Buffer) => {
    const { pass, detach } = filter ? filter.push(b) : { pass: b, detach: false };
    if (pass.length) kept.write(pass);
    if (detach) {
      conn.off('data', onData);
      kept.leave();
      conn.end();
    }
  };
  conn.on('data', onData);
  conn.once('end', () => (once ? kept.end() : kept.leave()));
  conn.once('close', () => (once ? kept.end() : kept.leave()));
  conn.resume();
}

/** Binds a program's handle to a hijacked connection: raw with a TTY, multiplexed frames without. */
export function bindHandle(
  handle: ProcessHandle,
  a: { conn: Duplex; stdin: boolean; stdout: boolean; stderr: boolean; detachKeys?: Buffer },
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
    handle.pty.output.on('data', (d: Buffer) => {
      if (!conn.writableEnded) conn.write(d); // not after a detach
    });
    handle.pty.output.on('end', ended);
    handle.pty.output.on('error', ended);
    if (a.stdin) {
      // The detach keys end this attachment to the exec; the program runs on.
      const filter = a.detachKeys ? new DetachFilter(a.detachKeys) : null;
      const input = handle.pty.input;
      const onData = (b: Buffer) => {
        const { pass, detach } = filter ? filter.push(b) : { pass: b, detach: false };
        if (pass.length) input.write(pass);
        if (detach) {
          conn.off('data', onData);
          conn.end();
        }
      };
      conn.on('data', onData);
    }
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
