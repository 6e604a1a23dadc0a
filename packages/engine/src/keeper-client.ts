// The front-end's end of a container's keeper (keeper.ts): spawns it, and gives the engine the
// keeper's init as the runtime takes an init started ahead (a Pid1Process whose sync socket
// is ours, whose exit the keeper reports). Loads little: the CLI imports it before the engine.
import type { ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import type { Duplex, Readable, Writable } from 'node:stream';
import { Pid1Process } from '@corral/pidns';
import type { ContainerProcess } from '@corral/runtime';
import { procStartTime } from '@corral/sys';
import {
  type FrontMessage,
  KEEPER_CONTROL_FD,
  KEEPER_SYNC_FD,
  type KeeperMessage,
  type KeeperMode,
  readMessages,
  writeMessage,
} from './keeper-protocol.js';
import { type KeeperStdio, spawnKeeper } from './keeper-spawn.js';

export { KEEPER_NODE_FLAGS } from './keeper-spawn.js';

/**
 * A process as ChildProcess's users here see one, that is not our child: no stdio of ours,
 * `stdio` as given, and its exit when `ended` says so.
 */
export class ChildStandIn extends EventEmitter {
  exitCode: number | null = null;
  signalCode: NodeJS.Signals | null = null;
  readonly stdin = null;
  readonly stdout = null;
  readonly stderr = null;

  constructor(
    readonly pid: number,
    readonly stdio: (Duplex | null)[],
  ) {
    super();
  }

  ended(code: number): void {
    if (this.exitCode !== null) return;
    this.exitCode = code;
    this.emit('exit', code, null);
  }

  ref(): void {}
  unref(): void {}
}

/** The keeper's child as the runtime sees an init's ChildProcess: our sync socket as its fd 3. */
class KeptChild extends ChildStandIn {
  constructor(pid: number, sync: Duplex | null) {
    super(pid, [null, null, null, sync]);
  }
}

/** Why the program's exit code is not the program's own: its keeper was killed first. */
export const KEEPER_LOST =
  'its keeper was killed before it recorded the exit: the container was killed with it';

/**
 * A keeper spawned for one container. `init` resolves with the init it started (the runtime's
 * `create` takes it); `lost` is set when the keeper died before reporting the exit, and the
 * exit code given is then 137 (the container was killed with it, see dieWithParent).
 */
export class KeeperClient {
  /** The keeper's process; a shared keeper's connection for a `hosted` client (keeper-shared.ts). */
  child: ChildProcess;
  readonly init: Promise<Pid1Process>;
  /** A fast keeper's: resolves once it has loaded the code that runs its container. */
  readonly loaded: Promise<void>;
  readonly mode: KeeperMode;
  /** Spawned `fast`: no init until asked (`requestInit`); `run` makes the container in the keeper. */
  readonly fast: boolean;
  /**
   * One container of a shared keeper (keeper-host.ts), which starts no init: `requestInit`
   * spawns a keeper of the container's own instead, and this client speaks to that one.
   */
  hosted: boolean;
  lost = false;
  private control: Duplex;
  private kept: KeptChild | null = null;
  private keptStartTime: number | null = null;
  private released = false;
  private settleInit: { resolve: (p: Pid1Process) => void; reject: (e: Error) => void } | null = null;
  private settleLoaded: () => void = () => {};

  /**
   * `stdio`: what the container's program gets as 0, 1 and 2 in `attached` mode (fds of this
   * process, 'ignore', or 'pipe': then `child.stdout` etc. are the program's streams).
   * `child`: a keeper this process spawned already with these (spawnKeeper), to speak to, or
   * (`hosted`) a shared keeper's connection.
   */
  constructor(
    mode: KeeperMode,
    stdio: KeeperStdio = ['ignore', 'ignore', 'ignore'],
    errorLog?: number,
    child?: ChildProcess,
    fast = false,
    hosted = false,
  ) {
    this.mode = mode;
    this.fast = fast && mode !== 'tty';
    this.hosted = hosted;
    this.child = child ?? spawnKeeper(mode, stdio, errorLog, this.fast);
    this.control = this.child.stdio[KEEPER_CONTROL_FD] as unknown as Duplex;
    this.loaded = new Promise((r) => {
      this.settleLoaded = r;
    });
    this.init = new Promise((resolve, reject) => {
      this.settleInit = { resolve, reject };
    });
    this.init.catch(() => {});
    this.listen();
  }

  /** Reads the keeper's messages until it ends (or this client has left it for another). */
  private listen(): void {
    const child = this.child;
    const sync = child.stdio[KEEPER_SYNC_FD] as unknown as Duplex;
    const { resolve, reject } = this.settleInit!;
    const current = () => this.child === child;
    readMessages<KeeperMessage>(
      this.control,
      (m) => {
        if (!current()) return;
        if (m.type === 'init') {
          if (procStartTime(m.pid) !== m.startTime)
            return reject(new Error('the container init died at once'));
          this.kept = new KeptChild(m.pid, sync);
          this.keptStartTime = m.startTime;
          resolve(new Pid1Process(this.kept as unknown as ChildProcess));
        } else if (m.type === 'ran') {
          // The program may have ended and been reaped already: no start-time check.
          this.kept = new KeptChild(m.pid, null);
          this.keptStartTime = m.startTime;
          this.onRan?.(this.keptProgram(this.kept));
        } else if (m.type === 'run-failed') this.onRunFailed?.(m.message, m.exitCode);
        else if (m.type === 'failed') reject(new Error(`the container's keeper: ${m.message}`));
        else if (m.type === 'exit') this.kept?.ended(m.code);
        else if (m.type === 'owned') this.onOwned?.();
        else if (m.type === 'loaded') this.settleLoaded();
      },
      () => {
        if (!current()) return;
        reject(new Error("the container's keeper ended before it started the init"));
        this.onRunFailed?.("the container's keeper ended before it ran the container", 125);
        if (!this.released) void this.keeperGone();
      },
    );
  }

  private onOwned: (() => void) | undefined;
  private onRan: ((p: ContainerProcess) => void) | undefined;
  private onRunFailed: ((message: string, exitCode: number) => void) | undefined;

  /** A fast keeper starts its init now (for a container its fast path cannot make). */
  requestInit(): void {
    if (this.initRequested) return;
    this.initRequested = true;
    if (this.hosted) this.leaveShared();
    else if (this.fast) this.send({ type: 'spawn-init' });
  }

  /**
   * A shared keeper starts no init: a keeper of the container's own takes its place (before it
   * owns anything), and starts its init at once. Its errors go where `own` says.
   */
  private leaveShared(): void {
    const shared = this.child;
    this.child = spawnKeeper(this.mode, undefined, undefined, false);
    this.control = this.child.stdio[KEEPER_CONTROL_FD] as unknown as Duplex;
    this.hosted = false;
    shared.kill('SIGKILL'); // closes the connection: nothing was kept there
    this.listen();
  }

  private initRequested = false;

  /**
   * A fast keeper creates and starts the container of `bundle` at once (after `own`): resolves
   * with its program, a child of the keeper (its exit reported as an init's), or rejects with
   * the exit code runc would give as `exitCode`.
   */
  run(
    runtimeRoot: string,
    id: string,
    bundle: string,
    ready: { seccompProgram?: string; parkedCgroup?: string } = {},
  ): Promise<ContainerProcess> {
    return new Promise((resolve, reject) => {
      this.onRan = resolve;
      this.onRunFailed = (message, exitCode) => reject(Object.assign(new Error(message), { exitCode }));
      this.send({ type: 'run', runtimeRoot, id, bundle, ...ready });
    });
  }

  /** The keeper died without a word: its init was killed with it (or is, now). */
  private async keeperGone(): Promise<void> {
    const kept = this.kept;
    if (!kept || kept.exitCode !== null) return;
    this.lost = true;
    // Its parent-death signal has killed the container, unless the keeper died before the init
    // had set it: then this end does it, as the keeper would have.
    const init = await this.init.catch(() => null);
    if (init) init.kill('SIGKILL');
    else this.killKept(); // a fast keeper's program (its signal is set before it runs)
    const startTime = procStartTime(kept.pid);
    while (startTime !== null && procStartTime(kept.pid) === startTime)
      await new Promise((r) => setTimeout(r, 10));
    kept.ended(137);
  }

  private send(m: FrontMessage): void {
    if (!this.control.destroyed) writeMessage(this.control as Writable, m);
  }

  /**
   * The init is this container's now; resolves once the keeper has attached what it keeps.
   * `errorLog`: the file for the keeper's own stderr from now on.
   */
  own(
    root: string,
    id: string,
    detached: boolean,
    terminalFd: number | null = null,
    errorLog?: string,
  ): Promise<void> {
    return new Promise((resolve, reject) => {
      this.onOwned = resolve;
      this.kept?.once('exit', () => reject(new Error("the container's keeper ended")));
      this.send({ type: 'own', root, id, detached, terminalFd, errorLog });
    });
  }

  started(): void {
    this.send({ type: 'started' });
  }

  /**
   * The exit is recorded (attached): the keeper may end, or apply the restart policy. `trash`:
   * a folder in the trash for it to delete first (see finishAttached).
   */
  recorded(trash?: string): void {
    this.send({ type: 'recorded', trash });
    this.release();
  }

  /** This process lets the keeper go on alone (detached), or never needed it. */
  release(): void {
    this.released = true;
    (this.control as Writable).end();
    (this.control as unknown as { unref?: () => void }).unref?.();
    this.child.unref();
  }

  /**
   * Ends the keeper (a launch that failed) and its init. An init still parked before its
   * config has no parent-death signal yet: it is killed here when known, and our end of its
   * sync socket is closed, so that it reads EOF and ends and nothing keeps this process alive.
   */
  kill(): void {
    this.released = true;
    this.killKept();
    this.child.kill('SIGKILL');
    this.control.destroy();
    (this.child.stdio[KEEPER_SYNC_FD] as unknown as Duplex | null)?.destroy();
  }

  /**
   * Signals the keeper's init or program, by start time: a pid the keeper has reaped may be
   * someone else's by now.
   */
  private killKept(signal: NodeJS.Signals | number = 'SIGKILL'): void {
    const kept = this.kept;
    if (kept && kept.exitCode === null && procStartTime(kept.pid) === this.keptStartTime) {
      try {
        process.kill(kept.pid, signal);
      } catch {
        // already gone
      }
    }
  }

  /** A fast keeper's program as the runtime's caller sees a process (not our child: no pidfd). */
  private keptProgram(kept: KeptChild): ContainerProcess {
    const exit = new Promise<number>((resolve) => kept.once('exit', resolve));
    return {
      child: kept as unknown as ChildProcess,
      pid: kept.pid,
      kill: (signal = 'SIGTERM') => this.killKept(signal as NodeJS.Signals | number),
      wait: () => exit,
    };
  }
}

/** The keeper's pid and start time, for the record. */
export function keeperIdentity(k: KeeperClient): { pid: number; startTime: number } | null {
  const pid = k.child.pid;
  const startTime = pid === undefined ? null : procStartTime(pid);
  return pid !== undefined && startTime !== null ? { pid, startTime } : null;
}

export type { Readable };
