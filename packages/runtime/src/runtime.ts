import { type ChildProcess, type StdioOptions, spawn } from 'node:child_process';
import {
  chownSync,
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { join, resolve } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import {
  type Cgroup,
  type CgroupLimits,
  limitsFromOci,
  type OciLinuxResources,
  openCgroup,
} from '@corral/cgroups';
import { Pid1Process } from '@corral/pidns';
import {
  CLONE,
  close,
  isErrno,
  mknod,
  O,
  parseSignal,
  pidfdGetfd,
  pidfdOpen,
  pidfdSendSignal,
  procStartTime,
  S_IF,
} from '@corral/sys';
import { applyDeviceRules, type DeviceRule } from './devices.js';
import type { ExecConfig } from './exec-init.js';
import { type InitStdio, type StdioPipe, spawnInit } from './init-process.js';
import { sealedNode } from './sealed.js';
import { JOINABLE_NAMESPACES, type OciProcess, type OciSpec, validateSpec } from './spec.js';
import type { InitMessage } from './sync.js';

/** What the runtime remembers of a container, in ROOT/ID/state.json. */
interface StoredState {
  id: string;
  bundle: string;
  rootfs: string;
  pid: number;
  /** Start time of the init in clock ticks: with the pid it names one process for good. */
  startTime: number;
  created: string;
  annotations: Record<string, string>;
  /** The container's cgroup path as given to openCgroup, or null when it has none. */
  cgroupsPath: string | null;
  /** The pids limit, written at start: the Node init's own threads must not count against it. */
  pidsLimit?: number;
}

export type ContainerStatus = 'created' | 'running' | 'stopped';

/** The OCI `state` of a container. */
export interface ContainerState {
  ociVersion: string;
  id: string;
  status: ContainerStatus;
  pid: number;
  bundle: string;
  rootfs: string;
  created: string;
  annotations: Record<string, string>;
}

/** A runtime failure with the exit code a CLI should use (125, or 126/127 for the program). */
export class RuntimeError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = 125) {
    super(message);
    this.name = 'RuntimeError';
    this.exitCode = exitCode;
  }
}

export interface CreateOptions {
  /** stdin, stdout and stderr of the container's process (child_process stdio forms). */
  stdio?: InitStdio;
  /** An init started ahead of need with spawnInit; its stdio and session are then already set. */
  init?: Pid1Process;
  /** Give the program /dev/null as stdin (for an init started with stdin inherited). */
  nullStdin?: boolean;
  /** Start the init in its own session, so it outlives a caller that exits (a shim does this). */
  detached?: boolean;
  /**
   * Called with the init's host PID before the init reads its spec: the place to put it in
   * its cgroups, so nothing of the program ever runs outside its limits.
   */
  beforeSetup?: (pid: number) => void | Promise<void>;
}

/** A container made by create, seen from the process that made it (its parent). */
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
  /** Resolves with the exit code (128 + S when killed by signal S). */
  wait(): Promise<number>;
}

const OCI_VERSION = '1.2.0';
const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

/**
 * An OCI runtime (create, start, state, kill, delete) keeping its state under `root`.
 * The process that calls create is the container init's parent and can wait for it; any
 * other process can start, inspect, signal and delete the container through the state.
 */
export class Runtime {
  readonly root: string;
  /** The node binary that runs inits and exec helpers (this process's unless given). */
  readonly node: string;

  constructor(options: { root: string; node?: string }) {
    this.root = resolve(options.root);
    this.node = options.node ?? process.execPath;
  }

  private dir(id: string): string {
    return join(this.root, id);
  }

  private read(id: string): StoredState {
    try {
      return JSON.parse(readFileSync(join(this.dir(id), 'state.json'), 'utf8')) as StoredState;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT')
        throw new RuntimeError(`container ${id} does not exist`, 1);
      throw e;
    }
  }

  /** Creates the container from `bundle`/config.json: its init waits for `start`. */
  async create(id: string, bundle: string, options: CreateOptions = {}): Promise<CreatedContainer> {
    if (!ID_RE.test(id))
      throw new RuntimeError(`invalid container id ${JSON.stringify(id)}: use letters, digits, _ . -`);
    bundle = resolve(bundle);
    let spec: OciSpec;
    try {
      spec = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8'));
    } catch (e) {
      throw new RuntimeError(`reading ${join(bundle, 'config.json')}: ${(e as Error).message}`);
    }
    try {
      validateSpec(spec);
    } catch (e) {
      throw new RuntimeError((e as Error).message);
    }
    const rootfs = resolve(bundle, spec.root.path);
    if (!existsSync(rootfs) || !statSync(rootfs).isDirectory())
      throw new RuntimeError(`rootfs ${rootfs} does not exist or is not a directory`);
    if (!(spec.linux?.namespaces ?? []).some((n) => n.type === 'pid' && !n.path)) {
      throw new RuntimeError(
        'the spec must ask for a new pid namespace: corral runs every container as PID 1 of its own',
      );
    }

    mkdirSync(this.root, { recursive: true, mode: 0o700 });
    const dir = this.dir(id);
    try {
      mkdirSync(dir, { mode: 0o700 });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST')
        throw new RuntimeError(`container ${id} already exists`);
      throw e;
    }
    const fifo = join(dir, 'exec.fifo');
    // A container gets a cgroup when its spec names one or asks for limits.
    const cgroupsPath = spec.linux?.cgroupsPath || (spec.linux?.resources ? `corral-${id}` : null);
    let cgroup: Cgroup | undefined;
    let pidsLimit: number | undefined;
    let early: CgroupLimits;
    let p: Pid1Process | undefined;
    let terminal: number | null = null;
    try {
      mknod(fifo, S_IF.FIFO | 0o600);
      // The init opens the fifo after it has become the container's user.
      chownSync(fifo, spec.process.user.uid, spec.process.user.gid);
      if (spec.process.terminal && options.init) {
        throw new RuntimeError(
          'a container with a terminal needs its own init: do not pass one started ahead',
        );
      }
      // With a terminal the init replaces stdin, stdout and stderr by the pty it opens.
      p =
        options.init ??
        spawnInit({
          stdio: spec.process.terminal ? 'ignore' : options.stdio,
          detached: options.detached,
          node: this.node,
        });
      const child = p.child;
      const sync = child.stdio[3] as unknown as Readable & Writable;
      const answer = readMessage(sync, p);
      if (cgroupsPath) {
        cgroup = openCgroup({ path: cgroupsPath });
        try {
          cgroup.create();
          ({ pidsLimit, ...early } = limitsFromOci(spec.linux?.resources as OciLinuxResources));
          cgroup.apply(early);
          applyDeviceRules(
            cgroup,
            ((spec.linux?.resources as { devices?: DeviceRule[] } | undefined)?.devices ??
              []) as DeviceRule[],
          );
          cgroup.addProcess(p.pid);
        } catch (e) {
          throw new RuntimeError(`cgroup ${cgroupsPath}: ${(e as Error).message}`);
        }
      }
      await options.beforeSetup?.(p.pid);
      sync.write(
        `${JSON.stringify({ spec, rootfs, fifo, nullStdin: options.nullStdin ?? false, node: this.node })}\n`,
      );
      const msg = await answer;
      sync.destroy();
      if (msg.type === 'error') throw new RuntimeError(msg.message, msg.exitCode);
      if (msg.type === 'ready' && msg.terminalFd !== null && msg.terminalFd !== undefined)
        terminal = pidfdGetfd(p.pidfd, msg.terminalFd);
      const startTime = procStartTime(p.pid);
      if (startTime === null) throw new RuntimeError('the container init died during setup');
      const state: StoredState = {
        id,
        bundle,
        rootfs,
        pid: p.pid,
        startTime,
        created: new Date().toISOString(),
        annotations: spec.annotations ?? {},
        cgroupsPath,
        pidsLimit,
      };
      writeAtomic(join(dir, 'state.json'), JSON.stringify(state));
      return createdContainer(id, p, terminal);
    } catch (e) {
      if (terminal !== null) close(terminal);
      if (p) {
        p.kill('KILL');
        await p.wait();
      }
      await cgroup?.remove().catch(() => {});
      rmSync(dir, { recursive: true, force: true });
      throw e;
    }
  }

  /** Lets the container's program run: opens the exec fifo the init is waiting on. */
  async start(id: string): Promise<void> {
    const st = this.read(id);
    const status = this.status(st);
    if (status !== 'created')
      throw new RuntimeError(`container ${id} is ${status}, not created: it cannot be started`);
    if (st.pidsLimit !== undefined) this.cgroup(id)?.apply({ pidsLimit: st.pidsLimit });
    const fifo = join(this.dir(id), 'exec.fifo');
    const fd = openSync(fifo, O.RDONLY | O.NONBLOCK | O.CLOEXEC);
    try {
      const buf = Buffer.alloc(1);
      const readByte = () => {
        try {
          return readSync(fd, buf, 0, 1, null) === 1;
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
          return false;
        }
      };
      for (;;) {
        if (readByte()) break;
        // A quick program may have run and ended already: its init wrote the byte first.
        if (!this.alive(st)) {
          if (readByte()) break;
          throw new RuntimeError(`container ${id} died before it started`);
        }
        await new Promise((r) => setTimeout(r, 1));
      }
    } finally {
      closeSync(fd);
    }
    unlinkSync(fifo);
  }

  private alive(st: StoredState): boolean {
    return procStartTime(st.pid) === st.startTime && !isZombie(st.pid);
  }

  private status(st: StoredState): ContainerStatus {
    if (!this.alive(st)) return 'stopped';
    return existsSync(join(this.dir(st.id), 'exec.fifo')) ? 'created' : 'running';
  }

  state(id: string): ContainerState {
    const st = this.read(id);
    return {
      ociVersion: OCI_VERSION,
      id,
      status: this.status(st),
      pid: st.pid,
      bundle: st.bundle,
      rootfs: st.rootfs,
      created: st.created,
      annotations: st.annotations,
    };
  }

  /**
   * Starts another program in a running container (`docker exec`). A helper on the host
   * (exec-init.ts) enters the container on one thread and starts the program from there: the
   * program is born in the container's namespaces and cgroup with its user, capabilities,
   * no_new_privs and seccomp profile. What `proc` leaves out (capabilities) or asks less of
   * than the container (no_new_privs) is taken from the container's own process.
   */
  async exec(id: string, proc: OciProcess, options: { stdio?: InitStdio } = {}): Promise<CreatedContainer> {
    const st = this.read(id);
    if (this.status(st) !== 'running') throw new RuntimeError(`container ${id} is not running`, 1);
    const spec = this.specOf(st);
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
    const child = spawn(sealedNode(this.node), ['--v8-pool-size=1', execScript], {
      stdio: [
        ...stdioTriple(proc.terminal ? 'ignore' : (options.stdio ?? 'inherit')),
        'pipe',
      ] as StdioOptions,
      env: { UV_THREADPOOL_SIZE: '1' },
    });
    const helper = new Pid1Process(child);
    let terminal: number | null = null;
    try {
      const sync = child.stdio[3] as unknown as Readable & Writable;
      const ready = readMessage(sync, helper);
      // The program is born in the helper's cgroup: the container's.
      this.cgroup(id)?.addProcess(helper.pid);
      const config: ExecConfig = {
        process,
        namespaces,
        seccomp: spec.linux?.seccomp,
        init: { pid: st.pid, startTime: st.startTime },
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
      return createdContainer(id, program, terminal);
    } catch (e) {
      if (terminal !== null) close(terminal);
      helper.kill('SIGKILL');
      await helper.wait();
      throw e;
    }
  }

  /** The container's spec, from its bundle. */
  private specOf(st: StoredState): OciSpec {
    try {
      return JSON.parse(readFileSync(join(st.bundle, 'config.json'), 'utf8')) as OciSpec;
    } catch (e) {
      // Never run an exec unconfined because the container's settings could not be read.
      throw new RuntimeError(`reading the spec of ${st.id}: ${(e as Error).message}`);
    }
  }

  /** The container's cgroup (for stats, freeze, thaw), or null when it has none. */
  cgroup(id: string): Cgroup | null {
    const st = this.read(id);
    return st.cgroupsPath ? openCgroup({ path: st.cgroupsPath }) : null;
  }

  /** Signals every process of the container through its cgroup (`kill --all`). */
  async killAll(id: string, signal: string | number = 'SIGKILL'): Promise<void> {
    const cgroup = this.cgroup(id);
    if (!cgroup) throw new RuntimeError(`container ${id} has no cgroup: kill --all needs one`);
    await cgroup.killAll(signal);
  }

  /** The ids of the containers this runtime knows. */
  list(): string[] {
    try {
      return readdirSync(this.root).filter((d) => existsSync(join(this.root, d, 'state.json')));
    } catch {
      return [];
    }
  }

  /** Sends a signal to the container's PID 1 (through a pidfd, never to a recycled PID). */
  kill(id: string, signal: string | number = 'SIGTERM'): void {
    const st = this.read(id);
    const signo = typeof signal === 'number' ? signal : parseSignal(signal);
    if (!this.alive(st)) throw new RuntimeError(`container ${id} is not running`, 1);
    let fd: number;
    try {
      fd = pidfdOpen(st.pid);
    } catch (e) {
      if (isErrno(e, 'ESRCH')) throw new RuntimeError(`container ${id} is not running`, 1);
      throw e;
    }
    try {
      // The pidfd was opened after the check: make sure it names the same process.
      if (!this.alive(st)) throw new RuntimeError(`container ${id} is not running`, 1);
      pidfdSendSignal(fd, signo);
    } finally {
      close(fd);
    }
  }

  /** Waits until the container's init is gone (for callers that are not its parent). */
  async waitStopped(id: string, timeoutMs = Number.POSITIVE_INFINITY): Promise<boolean> {
    const st = this.read(id);
    const end = Date.now() + timeoutMs;
    while (this.alive(st)) {
      if (Date.now() > end) return false;
      await new Promise((r) => setTimeout(r, 10));
    }
    return true;
  }

  /** Removes a stopped container's state; with `force`, kills it first. */
  async delete(id: string, options: { force?: boolean } = {}): Promise<void> {
    let st: StoredState;
    try {
      st = this.read(id);
    } catch (e) {
      // A create that died half way leaves a folder without state: remove that too.
      if (existsSync(this.dir(id)) && !existsSync(join(this.dir(id), 'state.json'))) {
        rmSync(this.dir(id), { recursive: true, force: true });
        return;
      }
      throw e;
    }
    if (this.alive(st)) {
      if (!options.force)
        throw new RuntimeError(`container ${id} is ${this.status(st)}: stop it first or force the delete`);
      try {
        this.kill(id, 'SIGKILL');
      } catch (e) {
        if (!(e instanceof RuntimeError)) throw e;
      }
      await this.waitStopped(id);
    }
    const cgroup = this.cgroup(id);
    if (cgroup?.exists()) {
      // Processes that escaped PID 1's death (none should) would keep the cgroup busy.
      await cgroup.killAll('SIGKILL').catch(() => {});
      await cgroup.remove();
    }
    rmSync(this.dir(id), { recursive: true, force: true });
  }
}

const execScript = fileURLToPath(new URL('./exec-init.js', import.meta.url));

function readlinkQuiet(path: string): string | null {
  try {
    return readlinkSync(path);
  } catch {
    return null;
  }
}

function stdioTriple(stdio: InitStdio): (StdioPipe | number)[] {
  return Array.isArray(stdio) ? stdio : [stdio, stdio, stdio];
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
function createdContainer(id: string, p: ContainerProcess, terminal: number | null): CreatedContainer {
  const { stdin, stdout, stderr } = p.child;
  return { id, pid: p.pid, process: p, stdin, stdout, stderr, terminal, wait: () => p.wait() };
}

function isZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.charAt(stat.lastIndexOf(')') + 2) === 'Z';
  } catch {
    return false;
  }
}

function writeAtomic(path: string, data: string): void {
  writeFileSync(`${path}.tmp`, data);
  renameSync(`${path}.tmp`, path);
}

/** The init's answer on the sync socket, or an error if it dies first. */
function readMessage(sync: Readable, p: Pid1Process): Promise<InitMessage> {
  return new Promise((resolvePromise, reject) => {
    let buf = '';
    const onData = (d: Buffer) => {
      buf += d.toString('utf8');
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      sync.off('data', onData);
      try {
        resolvePromise(JSON.parse(buf.slice(0, nl)) as InitMessage);
      } catch (e) {
        reject(new RuntimeError(`bad message from the container init: ${(e as Error).message}`));
      }
    };
    sync.on('data', onData);
    sync.on('error', () => {});
    p.wait().then((code) =>
      reject(new RuntimeError(`the container init exited with code ${code} during setup`, code)),
    );
  });
}
