// Runtime.exec: another program in a running container, started by a helper on the host
// (exec-init.ts) that enters the container on one thread and posix_spawns the program there.
import { type ChildProcess, type StdioOptions, spawn } from 'node:child_process';
import { readlinkSync } from 'node:fs';
import type { Readable, Writable } from 'node:stream';
import { Pid1Process } from '@corral/pidns';
import { CLONE, close, isErrno, parseSignal, pidfdGetfd, pidfdOpen, pidfdSendSignal } from '@corral/sys';
import { processScript } from './bundled.js';
import { RuntimeError } from './errors.js';
import type { ExecConfig } from './exec-init.js';
import type { InitStdio, StdioPipe } from './init-process.js';
import { sealedNode } from './sealed.js';
import { JOINABLE_NAMESPACES, type OciProcess, type OciSpec } from './spec.js';
import type { StoredState } from './state.js';
import type { InitMessage } from './sync.js';

export interface ExecOptions {
  stdio?: InitStdio;
  /** Leave the program once it runs (`exec -d`): it is reparented to the caller's subreaper. */
  detach?: boolean;
  /** Fds 3 .. 3+N-1 of this process that the program gets as the same numbers. */
  preserveFds?: number;
}

/** The process create or exec started, as its caller sees it. */
export interface ContainerProcess {
  /** The runtime's child: the init, or the helper of an exec. */
  readonly child: ChildProcess;
  /** The program's PID on the host. */
  readonly pid: number;
  /** Sends a signal to the program. */
  kill(signal?: string | number): void;
  /** Resolves with the program's exit code (128 + S when killed by signal S). */
  wait(): Promise<number>;
}

/** A container made by create (or a program started by exec), seen from its caller. */
export interface CreatedContainer {
  id: string;
  pid: number;
  process: ContainerProcess;
  /** The container's stdio pipes, when stdio asked for 'pipe'. */
  stdin: Writable | null;
  stdout: Readable | null;
  stderr: Readable | null;
  /** The master side of the container's terminal (process.terminal), for the creator to relay. */
  terminal: number | null;
  /** The terminal master's fd number in the parked init (until start), for its keeper to take. */
  initTerminalFd?: number | null;
  /** Resolves with the exit code (128 + S when killed by signal S). */
  wait(): Promise<number>;
}

const execScript = processScript('exec-init', import.meta.url);

function readlinkQuiet(path: string): string | null {
  try {
    return readlinkSync(path);
  } catch {
    return null;
  }
}

export function stdioTriple(stdio: InitStdio): (StdioPipe | number)[] {
  return Array.isArray(stdio) ? stdio : [stdio, stdio, stdio];
}

/** Fds 3 .. 3+n-1 passed on as the same numbers, then the sync pipe; its number for the child. */
export function withPreservedFds(
  stdio: (StdioPipe | number)[],
  n: number,
): { stdio: StdioOptions; syncFd: number } {
  const extra = Array.from({ length: n }, (_, i) => 3 + i);
  return { stdio: [...stdio, ...extra, 'pipe'] as StdioOptions, syncFd: 3 + n };
}

/** An exec'd program: the runtime's child is its helper, which exits as the program does. */
class ExecProcess implements ContainerProcess {
  private readonly pidfd: number;
  private done = false;

  constructor(
    private readonly helper: Pid1Process,
    readonly pid: number,
  ) {
    // The helper reaps the program only once we said we hold this pidfd: the PID names it.
    this.pidfd = pidfdOpen(pid);
    helper.wait().then(() => {
      this.done = true;
      close(this.pidfd);
    });
  }

  get child(): ChildProcess {
    return this.helper.child;
  }

  kill(signal: string | number = 'SIGTERM'): void {
    if (this.done) return;
    try {
      pidfdSendSignal(this.pidfd, typeof signal === 'number' ? signal : parseSignal(signal));
    } catch (e) {
      if (!isErrno(e, 'ESRCH')) throw e; // ended meanwhile
    }
  }

  wait(): Promise<number> {
    return this.helper.wait();
  }
}

/** What create and exec hand their caller: the process, its pipes and terminal, and a wait. */
export function createdContainer(id: string, p: ContainerProcess, terminal: number | null): CreatedContainer {
  const { stdin, stdout, stderr } = p.child;
  return { id, pid: p.pid, process: p, stdin, stdout, stderr, terminal, wait: () => p.wait() };
}

/** The init's (or helper's) next message on the sync socket, or an error if it dies first. */
export function readMessage(sync: Readable, p: Pid1Process): Promise<InitMessage> {
  return new Promise((resolvePromise, reject) => {
    let buf = '';
    const onData = (d: Buffer) => {
      buf += d.toString('utf8');
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      sync.off('data', onData);
      sync.pause();
      // Whatever came after the line belongs to the next read.
      const rest = buf.slice(nl + 1);
      if (rest) sync.unshift(Buffer.from(rest));
      try {
        resolvePromise(JSON.parse(buf.slice(0, nl)) as InitMessage);
      } catch (e) {
        reject(new RuntimeError(`bad message from the container init: ${(e as Error).message}`));
      }
    };
    sync.on('data', onData);
    sync.resume();
    sync.on('error', () => {});
    p.wait().then((code) => {
      const fail = () =>
        reject(new RuntimeError(`the container init exited with code ${code} during setup`, code));
      // Its last words (why its exec failed) may still be on the way: the exit event can come
      // before the socket's data. They are read first; its end (or a moment) says there are none.
      if (sync.readableEnded || sync.destroyed) return fail();
      const timer = setTimeout(fail, 500).unref();
      const ended = () => {
        clearTimeout(timer);
        setImmediate(fail);
      };
      sync.once('end', ended);
      sync.once('close', ended);
    });
  });
}

/**
 * Starts `proc` in the container of `st` (running, with spec `spec`). What `proc` leaves out
 * (capabilities) or asks less of than the container (no_new_privs) is taken from the
 * container's own process; `addToCgroup` puts the helper in the container's cgroup first.
 */
export async function execInContainer(
  st: StoredState,
  spec: OciSpec,
  proc: OciProcess,
  options: ExecOptions & { node: string; addToCgroup: (pid: number) => void },
): Promise<CreatedContainer> {
  // The namespaces to join: each one where the container differs from this process.
  let namespaces = CLONE.NEWPID;
  for (const { link, flag } of JOINABLE_NAMESPACES) {
    if (readlinkQuiet(`/proc/${st.pid}/ns/${link}`) !== readlinkQuiet(`/proc/self/ns/${link}`))
      namespaces |= flag;
  }
  const process: OciProcess = {
    ...proc,
    capabilities: proc.capabilities ?? spec.process.capabilities,
    noNewPrivileges: proc.noNewPrivileges || spec.process.noNewPrivileges,
  };
  const preserveFds = options.preserveFds ?? 0;
  const { stdio, syncFd } = withPreservedFds(
    stdioTriple(proc.terminal ? 'ignore' : (options.stdio ?? 'inherit')),
    preserveFds,
  );
  const child = spawn(sealedNode(options.node), ['--v8-pool-size=1', execScript], {
    stdio,
    env: { UV_THREADPOOL_SIZE: '1', CORRAL_SYNC_FD: String(syncFd) },
  });
  const helper = new Pid1Process(child);
  let terminal: number | null = null;
  try {
    const sync = child.stdio[syncFd] as unknown as Readable & Writable;
    const ready = readMessage(sync, helper);
    // The program is born in the helper's cgroup: the container's.
    options.addToCgroup(helper.pid);
    const config: ExecConfig = {
      process,
      namespaces,
      seccomp: spec.linux?.seccomp,
      init: { pid: st.pid, startTime: st.startTime },
      detach: options.detach,
      preserveFds,
    };
    sync.write(`${JSON.stringify(config)}\n`);
    const msg = await ready;
    if (msg.type === 'error') throw new RuntimeError(msg.message, msg.exitCode);
    if (msg.type === 'ready' && msg.terminalFd !== null && msg.terminalFd !== undefined)
      terminal = pidfdGetfd(helper.pidfd, msg.terminalFd);
    const started = readMessage(sync, helper);
    sync.write('go\n');
    const running = await started;
    if (running.type === 'error') throw new RuntimeError(running.message, running.exitCode);
    if (running.type !== 'started') throw new RuntimeError('the exec helper did not start the program');
    const program = new ExecProcess(helper, running.pid);
    sync.end('held\n');
    return createdContainer(st.id, program, terminal);
  } catch (e) {
    if (terminal !== null) close(terminal);
    helper.kill('SIGKILL');
    await helper.wait();
    throw e;
  }
}
