import { chownSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import {
  type Cgroup,
  type CgroupLimits,
  type CgroupStats,
  limitsFromOci,
  openCgroup,
  readProcCgroups,
} from '@corral/cgroups';
import { namespacePids, type Pid1Process } from '@corral/pidns';
import { close, mknod, parseSignal, pidfdGetfd, procStartTime, S_IF } from '@corral/sys';
import { applyDeviceRules, withDefaultDevices } from './devices.js';
import { RuntimeError } from './errors.js';
import {
  type CreatedContainer,
  createdContainer,
  type ExecOptions,
  execInContainer,
  readMessage,
} from './exec.js';
import { removeHalfCreated, writeCreating } from './half-created.js';
import { type HookState, runHooks } from './hooks.js';
import { type InitStdio, spawnInit, syncPipeOf } from './init-process.js';
import { withHome } from './passwd.js';
import { precompiledProfile } from './seccomp.js';
import { signalInit } from './signal-init.js';
import type { OciProcess, OciResources, OciSpec } from './spec.js';
import { readBundle } from './spec-check.js';
import { cgroupOomKills, cgroupPids, poststop, removeCgroupDirs, startContainer } from './start-stop.js';
import {
  type ContainerState,
  cgroupsPathOf,
  containerState,
  freezerOf,
  isAlive,
  makeStateDir,
  OCI_VERSION,
  readState,
  type StoredState,
  stateDir,
  statusOf,
  writeAtomic,
} from './state.js';

export { RuntimeError } from './errors.js';
export type { ContainerProcess, CreatedContainer, ExecOptions } from './exec.js';
export type { ContainerState, OciStatus } from './state.js';

export interface CreateOptions {
  /** stdin, stdout and stderr of the container's process (child_process stdio forms). */
  stdio?: InitStdio;
  /** An init started ahead of need with spawnInit (with the same preserveFds and PID namespace). */
  init?: Pid1Process;
  /**
   * The cgroup the given init waits in (a pool's parking cgroup, made by the caller beneath
   * the parent of the container's cgroup, the init moved into it while parked): it becomes the
   * container's cgroup by a rename where the kernel allows one (v1, the same parent, no cgroup
   * of that name yet), so that the start does not wait for the move (a v1 cgroup.procs write
   * waits for an RCU grace period, 5-20 ms). Elsewhere the init moves from it to the
   * container's cgroup as from the caller's own, and it is removed. Limits and device rules are
   * applied before the init gets its spec either way. create owns it from here.
   */
  parkedCgroup?: Cgroup;
  /** Give the program /dev/null as stdin (for an init started with stdin inherited). */
  nullStdin?: boolean;
  /** Start the init in its own session, so it outlives a caller that exits (a shim does this). */
  detached?: boolean;
  /** Fds 3 .. 3+N-1 of this process that the program gets as the same numbers (`--preserve-fds`). */
  preserveFds?: number;
  /** Keep this process's session keyring instead of a new one named after the container. */
  noNewKeyring?: boolean;
  /** Move the rootfs onto / and chroot instead of pivot_root (for a ramdisk root; weaker). */
  noPivot?: boolean;
  /**
   * The container is SIGKILLed when its init's parent dies (PR_SET_PDEATHSIG, set by the init
   * once it is the container's user): for a parent that keeps the container and its exit code,
   * so that a keeper killed never leaves a container that nothing watches.
   */
  dieWithParent?: boolean;
  /** The init given was started without stdio (as one for a terminal must be). */
  initWithoutStdio?: boolean;
  /**
   * The cgroup when the spec names none: null for none unless the spec has resources (corral's
   * default), or a path (runc uses the container's id, beneath its own cgroup).
   */
  defaultCgroupsPath?: string | null;
  /**
   * Called with the init's host PID before the init reads its spec: the place to put it in
   * its cgroups, so nothing of the program ever runs outside its limits.
   */
  beforeSetup?: (pid: number) => void | Promise<void>;
}

/**
 * An OCI runtime (create, start, state, kill, delete, pause, resume, update, exec) keeping its
 * state under `root`. The process that calls create is the container init's parent and can
 * wait for it, or may exit and leave it parked (its subreaper then reaps it); any process can
 * start, inspect, signal and delete the container through the state.
 */
/**
 * The ids of the containers whose state a runtime rooted at `root` keeps (Runtime.list without
 * a Runtime: for a listing's check of what a reclaim would release).
 */
export function runtimeStates(root: string): string[] {
  try {
    return readdirSync(root).filter((d) => existsSync(join(root, d, 'state.json')));
  } catch {
    return [];
  }
}

export class Runtime {
  readonly root: string;
  /** The node binary that runs inits and exec helpers (this process's unless given). */
  readonly node: string;

  constructor(options: { root: string; node?: string }) {
    this.root = resolve(options.root);
    this.node = options.node ?? process.execPath;
  }

  private dir(id: string): string {
    return stateDir(this.root, id);
  }

  private read(id: string): StoredState {
    return readState(this.root, id);
  }

  private hookState(st: StoredState, status: HookState['status']): HookState {
    return {
      ociVersion: OCI_VERSION,
      id: st.id,
      status,
      pid: st.pid,
      bundle: st.bundle,
      annotations: st.annotations,
    };
  }

  /** Creates the container from `bundle`/config.json: its init waits for `start`. */
  async create(id: string, bundle: string, options: CreateOptions = {}): Promise<CreatedContainer> {
    bundle = resolve(bundle);
    const { spec, rootfs } = readBundle(bundle);
    const pidNs = (spec.linux?.namespaces ?? []).find((n) => n.type === 'pid');
    if (!pidNs) {
      throw new RuntimeError(
        'the spec must ask for a new pid namespace, or give the path of one to join: corral never runs a container in the host PID namespace',
      );
    }
    if (spec.process.terminal && options.init && !options.initWithoutStdio)
      throw new RuntimeError('a container with a terminal needs its own init: do not pass one started ahead');
    const parked = options.parkedCgroup;
    if (parked && !options.init) throw new RuntimeError('a parked cgroup comes with the init parked in it');

    const dir = makeStateDir(this.root, id);
    const fifo = join(dir, 'exec.fifo');
    const cgroupsPath = cgroupsPathOf(spec, id, options.defaultCgroupsPath);
    if (parked && !cgroupsPath)
      throw new RuntimeError(
        'an init parked in a cgroup needs a container with a cgroup (linux.cgroupsPath)',
      );
    let cgroup: Cgroup | undefined;
    let madeCgroup = false;
    let pidsLimit: number | undefined;
    let early: CgroupLimits;
    let p: Pid1Process | undefined;
    let terminal: number | null = null;
    try {
      mknod(fifo, S_IF.FIFO | 0o600);
      // The init opens the fifo after it has become the container's user.
      chownSync(fifo, spec.process.user.uid, spec.process.user.gid);
      // With a terminal the init replaces stdin, stdout and stderr by the pty it opens.
      p =
        options.init ??
        spawnInit({
          stdio: spec.process.terminal ? 'ignore' : options.stdio,
          detached: options.detached,
          node: this.node,
          preserveFds: options.preserveFds,
          pidNamespace: pidNs.path || undefined,
        });
      const sync = syncPipeOf(p);
      let answer = readMessage(sync, p);
      answer.catch(() => {}); // awaited below, unless the set-up fails first
      const cgroupOwn = readProcCgroups('self');
      // Before anything outside the folder is made: what delete takes away after a SIGKILL.
      writeCreating(dir, { cgroupsPath, cgroupOwn });
      if (cgroupsPath) {
        cgroup = openCgroup({ path: cgroupsPath, own: cgroupOwn });
        try {
          // runc joins a cgroup that is there already (a pod's, made by its caller).
          let joined = false;
          if (!cgroup.exists()) {
            joined = parked !== undefined && renamed(parked, cgroup);
            if (!joined) cgroup.create();
            madeCgroup = true;
          }
          ({ pidsLimit, ...early } = limitsFromOci(spec.linux?.resources));
          cgroup.apply(early);
          // Written at start (see StoredState), checked now.
          if (pidsLimit !== undefined) cgroup.validate({ pidsLimit });
          applyDeviceRules(cgroup, withDefaultDevices(spec.linux?.resources?.devices));
          if (!joined) {
            cgroup.addProcess(p.pid, { from: parked });
            await parked?.remove().catch(() => {}); // empty now; the pool tries again later
          }
        } catch (e) {
          throw new RuntimeError(`cgroup ${cgroupsPath}: ${(e as Error).message}`);
        }
      }
      if (spec.process.oomScoreAdj !== undefined) setOomScoreAdj(p.pid, spec.process.oomScoreAdj);
      await options.beforeSetup?.(p.pid);
      const startTime = procStartTime(p.pid);
      if (startTime === null) throw new RuntimeError('the container init died during setup');
      const st: StoredState = {
        id,
        bundle,
        rootfs,
        pid: p.pid,
        startTime,
        created: new Date().toISOString(),
        annotations: spec.annotations ?? {},
        cgroupsPath,
        cgroupOwn,
        cgroupDirs: cgroup ? { ...cgroup.dirs } : undefined,
        freezer: cgroup ? freezerOf(cgroup) : undefined,
        pidsLimit,
        hooks: spec.hooks && { poststart: spec.hooks.poststart, poststop: spec.hooks.poststop },
      };
      const state = this.hookState(st, 'creating');
      spec.process.env = withHome(spec.process.env, rootfs, spec.process.user.uid);
      sync.write(
        `${JSON.stringify({ spec, rootfs, fifo, nullStdin: options.nullStdin ?? false, node: this.node, state, preserveFds: options.preserveFds ?? 0, noNewKeyring: options.noNewKeyring, noPivot: options.noPivot, dieWithParent: options.dieWithParent, seccompProgram: precompiledProfile(spec.linux?.seccomp) })}\n`,
      );
      let msg = await answer;
      if (msg.type === 'hooks') {
        // The init paused before pivot_root: the runtime's own hooks run now, in its namespaces.
        answer = readMessage(sync, p);
        try {
          runHooks(spec.hooks, 'prestart', state);
          runHooks(spec.hooks, 'createRuntime', state);
        } catch (e) {
          throw new RuntimeError((e as Error).message);
        }
        sync.write('go\n');
        msg = await answer;
      }
      sync.destroy();
      if (msg.type === 'error') throw new RuntimeError(msg.message, msg.exitCode);
      if (msg.type === 'ready' && msg.terminalFd !== null && msg.terminalFd !== undefined)
        terminal = pidfdGetfd(p.pidfd, msg.terminalFd);
      if (procStartTime(p.pid) !== startTime) throw new RuntimeError('the container init died during setup');
      writeAtomic(join(dir, 'state.json'), JSON.stringify(st));
      const created = createdContainer(id, p, terminal);
      if (msg.type === 'ready') created.initTerminalFd = msg.terminalFd ?? null;
      return created;
    } catch (e) {
      if (terminal !== null) close(terminal);
      if (p) {
        p.kill('KILL');
        await p.wait();
      }
      if (madeCgroup) await cgroup?.remove().catch(() => {});
      await parked?.remove().catch(() => {}); // gone already when it was renamed
      rmSync(dir, { recursive: true, force: true });
      throw e;
    }
  }

  /** Lets the container's program run: opens the exec fifo the init is waiting on; then poststart hooks. */
  async start(id: string): Promise<void> {
    const failed = await startContainer(this.root, id);
    if (failed) {
      // runc's behaviour: a failed poststart hook ends the container.
      this.killQuiet(this.read(id), 'SIGKILL');
      throw new RuntimeError(failed.message);
    }
  }

  state(id: string): ContainerState {
    return containerState(this.root, this.read(id));
  }

  /**
   * Starts another program in a running container (`docker exec`). A helper on the host
   * (exec-init.ts) enters the container on one thread and starts the program from there: the
   * program is born in the container's namespaces and cgroup with its user, capabilities,
   * no_new_privs and seccomp profile.
   */
  async exec(id: string, proc: OciProcess, options: ExecOptions = {}): Promise<CreatedContainer> {
    const st = this.read(id);
    const status = statusOf(this.root, st);
    if (status !== 'running')
      throw new RuntimeError(`container ${id} is ${status}, not running: cannot exec in it`, 1);
    const env = withHome(proc.env, `/proc/${st.pid}/root`, proc.user.uid);
    return execInContainer(
      st,
      this.specOf(st),
      { ...proc, env },
      {
        ...options,
        node: this.node,
        addToCgroup: (pid) => this.cgroup(id)?.addProcess(pid),
      },
    );
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
    return st.cgroupsPath ? openCgroup({ path: st.cgroupsPath, own: st.cgroupOwn }) : null;
  }

  /**
   * How many times the kernel's OOM killer struck in the container's cgroup (0 without one):
   * from the folders its state names, without opening the cgroup (the mount table and the
   * hierarchies read again, 1-3 ms of each container's end).
   */
  oomKills(id: string): number {
    const st = this.read(id);
    return cgroupOomKills(st) ?? this.cgroup(id)?.oomKills() ?? 0;
  }

  private requireCgroup(id: string, what: string): Cgroup {
    const cgroup = this.cgroup(id);
    if (!cgroup) throw new RuntimeError(`container ${id} has no cgroup: ${what} needs one`);
    return cgroup;
  }

  /** Signals every process of the container through its cgroup (`kill --all`). */
  async killAll(id: string, signal: string | number = 'SIGKILL'): Promise<void> {
    const st = this.read(id);
    if (!isAlive(st)) throw new RuntimeError(`container ${id} is not running`, 1);
    await this.requireCgroup(id, 'kill --all').killAll(signal);
  }

  /** Freezes every process of the container (`pause`): its status becomes paused. */
  async pause(id: string): Promise<void> {
    const st = this.read(id);
    const status = statusOf(this.root, st);
    if (status !== 'running') throw new RuntimeError(`container ${id} is ${status}, not running`, 1);
    await this.requireCgroup(id, 'pause').freeze();
  }

  /** Thaws a paused container (`resume`). */
  async resume(id: string): Promise<void> {
    const st = this.read(id);
    const status = statusOf(this.root, st);
    if (status !== 'paused') throw new RuntimeError(`container ${id} is ${status}, not paused`, 1);
    await this.requireCgroup(id, 'resume').thaw();
  }

  /** Changes the limits of a container (`update`): linux.resources, devices included. */
  update(id: string, resources: OciResources): CgroupLimits {
    const st = this.read(id);
    if (!isAlive(st)) throw new RuntimeError(`container ${id} is not running`, 1);
    const cgroup = this.requireCgroup(id, 'update');
    try {
      const { pidsLimit, ...rest } = limitsFromOci(resources);
      const limits: CgroupLimits = rest;
      // Before start the pids limit waits in the state: the init's Node threads must not count.
      if (pidsLimit !== undefined && statusOf(this.root, st) === 'created') {
        writeAtomic(join(this.dir(id), 'state.json'), JSON.stringify({ ...st, pidsLimit }));
      } else if (pidsLimit !== undefined) {
        limits.pidsLimit = pidsLimit;
      }
      const applied = cgroup.apply(limits);
      applyDeviceRules(cgroup, resources.devices ?? []);
      return applied;
    } catch (e) {
      throw new RuntimeError((e as Error).message);
    }
  }

  /** Usage of the container's cgroup. */
  stats(id: string): CgroupStats {
    return this.requireCgroup(id, 'stats').stats();
  }

  /** Host PIDs of the container's processes: its cgroup's, or its PID namespace's without one. */
  processes(id: string): number[] {
    const st = this.read(id);
    if (!isAlive(st)) return [];
    const cgroup = this.cgroup(id);
    return cgroup ? cgroup.processes() : namespacePids(st.pid);
  }

  /** The ids of the containers this runtime knows. */
  list(): string[] {
    return runtimeStates(this.root);
  }

  /** Sends a signal to the container's init (through a pidfd, never to a recycled PID). */
  kill(id: string, signal: string | number = 'SIGTERM'): void {
    signalInit(this.read(id), typeof signal === 'number' ? signal : parseSignal(signal));
  }

  private killQuiet(st: StoredState, signal: string): void {
    try {
      this.kill(st.id, signal);
    } catch (e) {
      if (!(e instanceof RuntimeError)) throw e;
    }
  }

  /** Waits until the container's init is gone (for callers that are not its parent). */
  async waitStopped(id: string, timeoutMs = Number.POSITIVE_INFINITY): Promise<boolean> {
    const st = this.read(id);
    const end = Date.now() + timeoutMs;
    while (isAlive(st)) {
      if (Date.now() > end) return false;
      await new Promise((r) => setTimeout(r, 10));
    }
    return true;
  }

  /**
   * Removes a container's state and cgroup: a stopped or created one (whose parked init is
   * killed), a running or paused one only with `force`. Then runs the poststop hooks, whose
   * failures come back as warnings (the spec's rule).
   */
  async delete(id: string, options: { force?: boolean } = {}): Promise<string[]> {
    let st: StoredState;
    try {
      st = this.read(id);
    } catch (e) {
      // A create that died half way leaves a folder without state: remove that too,
      // and its cgroup (see half-created.ts).
      const dir = this.dir(id);
      if (existsSync(dir) && !existsSync(join(dir, 'state.json'))) {
        await removeHalfCreated(dir);
        return [];
      }
      throw e;
    }
    const status = statusOf(this.root, st);
    if (status !== 'stopped') {
      if (status !== 'created' && !options.force)
        throw new RuntimeError(`container ${id} is ${status}: stop it first or force the delete`);
      this.killQuiet(st, 'SIGKILL');
      // A frozen task dies only once thawed.
      if (status === 'paused')
        await this.cgroup(id)
          ?.thaw()
          .catch(() => {});
      await this.waitStopped(id);
    }
    // Processes that outlived the init (exec'd ones in a joined PID namespace) keep it busy.
    const left = cgroupPids(st);
    if (left === null || left.length) {
      const cgroup = this.cgroup(id);
      if (cgroup?.exists()) {
        if (cgroup.processes().length) await cgroup.killAll('SIGKILL').catch(() => {});
        await cgroup.remove();
      }
    } else {
      await removeCgroupDirs(st);
    }
    rmSync(this.dir(id), { recursive: true, force: true });
    return poststop(st);
  }
}

/** Whether `parked` could be renamed to `to` (see CreateOptions.parkedCgroup), and was. */
function renamed(parked: Cgroup, to: Cgroup): boolean {
  try {
    parked.renameTo(to);
    return true;
  } catch {
    return false; // v2, another parent, a hierarchy missing: the init is moved instead
  }
}

function setOomScoreAdj(pid: number, value: number): void {
  try {
    writeFileSync(`/proc/${pid}/oom_score_adj`, String(value));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new RuntimeError(
      `process.oomScoreAdj ${value}: ${(e as Error).message}${code === 'EACCES' || code === 'EPERM' ? ' (lowering it needs CAP_SYS_RESOURCE, which this runtime lacks)' : ''}`,
    );
  }
}
