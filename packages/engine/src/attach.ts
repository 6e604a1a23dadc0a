import { closeSync } from 'node:fs';
import type { Readable, Writable } from 'node:stream';
import type { Pid1Process } from '@corral/pidns';
import type { CreatedContainer, OciProcess, StdioPipe } from '@corral/runtime';
import type { EngineContext } from './context.js';
import { checkEnv } from './create.js';
import { finishAttached } from './detached.js';
import { EngineError } from './errors.js';
import { KeeperClient } from './keeper-client.js';
import {
  discard,
  fromRuntime,
  getRecord,
  keeperFastFor,
  type LaunchStep,
  launch,
  runningRecord,
} from './lifecycle.js';
import { rlimitsOf } from './run-options.js';
import { capabilitiesFor, containerEnv, execUser } from './spec.js';
import { openPty, type Pty } from './terminal.js';

/**
 * Where one of the program's streams goes: a pipe the handle exposes, nothing, or an fd of
 * the caller's that the program gets as its own (the CLI gives its 0, 1 and 2: the program
 * then writes straight to the user's terminal or file, with no copy through the engine).
 */
export type StdioTarget = 'pipe' | 'ignore' | number;

export interface AttachOptions {
  stdin?: StdioTarget;
  stdout?: StdioTarget;
  stderr?: StdioTarget;
  /** The terminal's size at start, for a container or exec with a tty. */
  consoleSize?: { cols: number; rows: number };
}

/**
 * A running program (a container's or an exec's) as a front-end drives it: the CLI binds it
 * to its own stdio and signals, the daemon to a hijacked HTTP connection.
 */
export interface ProcessHandle {
  /** The container's id. */
  id: string;
  /** The program's streams, where `pipe` was asked for. */
  stdin: Writable | null;
  stdout: Readable | null;
  stderr: Readable | null;
  /** The program's terminal (with tty), in place of stdin, stdout and stderr. */
  pty: Pty | null;
  resize(cols: number, rows: number): void;
  /** Sends a signal to the program (a name or number); quiet when it has ended. */
  signal(sig: string | number): void;
  /** Resolves with the exit code (128 + N for signal N) once the engine has recorded it. */
  wait(): Promise<number>;
}

/** The handle of a detached exec: nothing to read, write or wait for. */
export function detachedHandle(id: string): ProcessHandle {
  return {
    id,
    stdin: null,
    stdout: null,
    stderr: null,
    pty: null,
    resize() {},
    signal() {},
    wait: async () => 0,
  };
}

function stdioOf(
  o: AttachOptions,
  tty: boolean,
): [StdioPipe | number, StdioPipe | number, StdioPipe | number] {
  if (tty) return ['ignore', 'ignore', 'ignore'];
  return [o.stdin ?? 'ignore', o.stdout ?? 'ignore', o.stderr ?? 'ignore'];
}

function handleOf(
  id: string,
  created: CreatedContainer,
  kill: (sig: string | number) => void,
  after: (code: number) => Promise<void>,
): ProcessHandle {
  const term = created.terminal !== null ? openPty(created.terminal) : null;
  let result: Promise<number> | null = null;
  return {
    id,
    stdin: created.stdin,
    stdout: created.stdout,
    stderr: created.stderr,
    pty: term?.pty ?? null,
    resize: (cols, rows) => term?.pty.resize(cols, rows),
    signal(sig) {
      try {
        kill(sig);
      } catch {
        // it has ended
      }
    },
    wait() {
      result ??= (async () => {
        const code = await created.wait();
        await term?.close();
        await after(code);
        return code;
      })();
      return result;
    },
  };
}

/**
 * Starts a created container with its streams bound as asked and returns its handle; this
 * process is its parent and records its exit (wait() resolves after that). A launch that
 * fails removes the container.
 */
export async function runAttached(
  ctx: EngineContext,
  ref: string,
  io: AttachOptions,
  options: RunExtras = {},
): Promise<ProcessHandle> {
  const r = getRecord(ctx, ref);
  // The container's keeper: it outlives this process if this process is killed, and then
  // records the exit and removes an --rm container. (An init given instead: no keeper; the
  // container then ends with this process.)
  let keeper = options.keeper ?? null;
  if (keeper && keeper.mode !== (r.config.tty ? 'tty' : 'attached')) {
    keeper.kill(); // started ahead for other stdio (a terminal needs an init without)
    keeper = null;
  }
  if (!keeper && !options.init)
    keeper = new KeeperClient(
      r.config.tty ? 'tty' : 'attached',
      stdioOf(io, r.config.tty),
      undefined,
      undefined,
      keeperFastFor(r, 'attached'),
    );
  let created: CreatedContainer;
  try {
    const size = io.consoleSize ? { height: io.consoleSize.rows, width: io.consoleSize.cols } : undefined;
    created = await launch(ctx, r.id, {
      stdio: stdioOf(io, false),
      detached: false,
      init: options.init,
      keeper: keeper ?? undefined,
      consoleSize: size,
      abort: options.abort,
      onStep: options.onStep,
    });
  } catch (e) {
    await discard(ctx, ctx.records.read(r.id) ?? r);
    throw e;
  }
  if (keeper) {
    // The program's pipes (stdio 'pipe') run between it and us, through the keeper's stdio.
    const { stdin, stdout, stderr } = keeper.child;
    created = { ...created, stdin, stdout, stderr };
  }
  return handleOf(
    r.id,
    created,
    (sig) => ctx.runtime.kill(r.id, sig),
    (code) => finishAttached(ctx, r.id, code, keeper),
  );
}

/** What an attached run may be given beyond its streams. */
export interface RunExtras {
  /**
   * The container's keeper started ahead of need (`new KeeperClient('attached', stdio)`), with
   * the program's stdio: its init starts while the caller loads the engine.
   */
  keeper?: KeeperClient;
  /** An init started ahead of need (spawnInit) with the caller's stdio: no keeper then. */
  init?: Pid1Process;
  /** Fired before the program runs: what the run made is removed and the call fails (Unavailable). */
  abort?: AbortSignal;
  /** Called after each step ('record' from Engine.run, then the launch's steps). */
  onStep?: (step: 'record' | LaunchStep) => void;
}

export interface ExecOptions {
  cmd: string[];
  env?: string[];
  workdir?: string;
  user?: string;
  tty?: boolean;
  /** Resolve once the program runs, its streams going nowhere (wait() resolves with 0). */
  detach?: boolean;
}

/** docker exec: another program in a running container, as a handle. */
function runtimeRunning(ctx: EngineContext, id: string): boolean {
  try {
    return ctx.runtime.state(id).status === 'running';
  } catch {
    return false;
  }
}

export async function execIn(
  ctx: EngineContext,
  ref: string,
  options: ExecOptions,
  io: AttachOptions = {},
): Promise<ProcessHandle> {
  const r = runningRecord(ctx, ref);
  if (r.state.paused)
    throw new EngineError('Conflict', `Container ${r.id} is paused, unpause the container before exec`);
  if (!options.cmd.length) throw new EngineError('InvalidArgument', 'exec needs a command');
  checkEnv(options.env ?? []);
  const env = [...containerEnv(r), ...(options.env ?? [])];
  const user = execUser(r, options.user ?? r.config.user, ctx.rootfs(r.id));
  const proc: OciProcess = {
    args: options.cmd,
    env: options.tty && !env.some((e) => e.startsWith('TERM=')) ? [...env, 'TERM=xterm'] : env,
    cwd: options.workdir || r.config.workdir || '/',
    user,
    capabilities: capabilitiesFor(r, user.uid),
    // The container's --ulimit settings, as its program has them (runc's rule for exec).
    rlimits: rlimitsOf(r),
    terminal: options.tty ?? false,
    ...(options.tty && io.consoleSize
      ? { consoleSize: { height: io.consoleSize.rows, width: io.consoleSize.cols } }
      : {}),
  };
  const stdio = options.detach ? (['ignore', 'ignore', 'ignore'] as const) : stdioOf(io, false);
  let created: CreatedContainer;
  try {
    created = await ctx.runtime.exec(r.id, proc, {
      stdio: [...stdio] as [StdioPipe | number, StdioPipe | number, StdioPipe | number],
    });
  } catch (e) {
    // The container ended or was removed while the exec was being set up (an rm -f racing
    // it): Docker's answer, not the setup's ("init exited with code 137").
    if (!runtimeRunning(ctx, r.id)) throw new EngineError('Conflict', `container ${r.id} is not running`);
    throw fromRuntime(e);
  }
  if (options.detach) {
    created.process.child.unref();
    if (created.terminal !== null) closeSync(created.terminal);
    return detachedHandle(r.id);
  }
  return handleOf(
    r.id,
    created,
    (sig) => created.process.kill(sig as NodeJS.Signals),
    async () => {},
  );
}
