import { writeFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import type { Cgroup } from '@corral/cgroups';
import type { Pid1Process } from '@corral/pidns';
import {
  type CreatedContainer,
  fastRunRefusal,
  type InitStdio,
  type OciSpec,
  precompiledProfile,
  RuntimeError,
} from '@corral/runtime';
import { procStartTime } from '@corral/sys';
import { mountAll, type UnionMount, type UnionServerExit } from '@corral/unionfs';
import { releaseCopyMounts } from './archive/container.js';
import type { EngineContext } from './context.js';
import { signalNumber } from './create.js';
import { EngineError } from './errors.js';
import { type KeeperClient, keeperIdentity } from './keeper-client.js';
import { ociMounts, removeAnonymousVolumes } from './mounts.js';
import { setupNetwork, teardownNetwork, writeEtc } from './network.js';
import { type ContainerRecord, runtimeStatus } from './records.js';
import { buildSpec } from './spec.js';
import type { TrashOwner } from './trash.js';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The runtime's errors as the engine's (their kind kept: 125/126/127 for the program). */
export function fromRuntime(e: unknown, prefix = ''): unknown {
  return e instanceof RuntimeError
    ? new EngineError(e.kind, `${prefix}${e.message}`, { repair: e.repair })
    : e;
}

function processAlive(ctx: EngineContext, r: ContainerRecord): boolean {
  return runtimeStatus(ctx.runtime, r.id) !== 'exited';
}

/** Whether the container's keeper still lives (the same process: pid and start time). */
export function keeperAlive(r: ContainerRecord): boolean {
  const pid = r.state.watcherPid;
  if (!pid) return false;
  const now = procStartTime(pid);
  return now !== null && (r.state.keeperStartTime === undefined || now === r.state.keeperStartTime);
}

/**
 * A record whose keeper is gone while it says "running" (or "restarting") is brought up to
 * date here, so no command ever shows a dead container as running and `wait` and `logs -f`
 * end. A keeper that is SIGKILLed takes its container with it (dieWithParent); one that still
 * runs without a keeper (a seccomp profile refused the parent-death signal) is killed here:
 * nothing would record how it ends. What it leaves (mount, cgroups) goes at the next
 * Engine.open (reclaimUnkept).
 */
export function reconcile(ctx: EngineContext, r: ContainerRecord): ContainerRecord {
  if (r.state.status === 'running' && storageServerGone(r))
    r = failStorage(ctx, r.id, r.state.storagePid!, null);
  if (!keeperGone(r)) return r;
  if (r.state.status === 'running' && processAlive(ctx, r)) {
    if (r.state.watcherPid === undefined) return r; // a record of a version before keepers
    try {
      ctx.runtime.kill(r.id, 'SIGKILL');
    } catch {
      // ended meanwhile
    }
  }
  const pid = r.state.watcherPid;
  return ctx.records.update(r.id, (x) => {
    if (x.state.status === 'running') {
      x.state.status = 'exited';
      x.state.exitCode ??= 137;
      x.state.finishedAt ??= new Date().toISOString();
      x.state.error ??= `its keeper (pid ${pid}) was killed before it recorded the exit: the container was killed with it`;
    } else {
      x.state.error ??= `its keeper (pid ${pid}) was killed while it waited to restart it`;
    }
    x.state.restarting = false;
  });
}

/** A record that says "running" (or "restarting") whose keeper is gone. */
function keeperGone(r: ContainerRecord): boolean {
  return (r.state.status === 'running' || !!r.state.restarting) && !keeperAlive(r);
}

/** Whether reconcile would change the record: a storage server or a keeper gone. */
export function reconcileWanted(r: ContainerRecord): boolean {
  return (r.state.status === 'running' && storageServerGone(r)) || keeperGone(r);
}

export function getRecord(ctx: EngineContext, ref: string): ContainerRecord {
  return reconcile(ctx, ctx.records.resolve(ref));
}

export function runningRecord(ctx: EngineContext, ref: string): ContainerRecord {
  const r = getRecord(ctx, ref);
  if (r.state.status !== 'running') throw new EngineError('Conflict', `Container ${r.name} is not running`);
  return r;
}

/** The record names a storage server (the fuse driver) that is no longer that process. */
export function storageServerGone(r: ContainerRecord): boolean {
  const pid = r.state.storagePid;
  return pid !== undefined && procStartTime(pid) !== r.state.storageStartTime;
}

/**
 * A root served by a process (the fuse driver) whose server ends while the container runs
 * leaves a root that answers ENOTCONN: the container is killed and recorded as failed (its
 * keeper records the exit). The launching process watches its server while it lives; after
 * it has gone (`run -d`), every command's reconcile checks the server by pid and start time.
 */
function failStorage(
  ctx: EngineContext,
  id: string,
  pid: number,
  exit: UnionServerExit | null,
): ContainerRecord {
  const how = exit ? ` (${exit.signal ?? `exit code ${exit.code}`})` : '';
  const r = ctx.records.update(id, (x) => {
    x.state.error ??= `the storage server (pid ${pid}) of the container's root ended${how}: its files are gone from under it`;
    x.state.storagePid = undefined;
  });
  try {
    ctx.runtime.kill(id, 'SIGKILL');
  } catch {
    // ended meanwhile
  }
  return r;
}

function watchStorage(ctx: EngineContext, id: string, m: UnionMount): void {
  if (m.pid === null) return;
  m.closed.then((exit) => {
    if (ctx.releasing.has(id)) return;
    const r = ctx.records.read(id);
    if (r?.state.status !== 'running' || r.state.storagePid === undefined) return;
    failStorage(ctx, id, m.pid as number, exit);
  });
}

export interface LaunchOptions {
  stdio: InitStdio;
  detached: boolean;
  init?: Pid1Process;
  consoleSize?: { height: number; width: number };
  /** Checked between the steps: an abort undoes what the launch made. */
  abort?: AbortSignal;
  /** Called after each step (for tests that interrupt a run at every step). */
  onStep?: (step: LaunchStep) => void;
  /**
   * The container's keeper, which started the init (`init` is then ignored): the launch goes
   * through its init and hands the container to it. Without one, this process is the keeper.
   */
  keeper?: KeeperClient;
  /**
   * The cgroup the keeper's init waits in, or an empty one made ahead for a fast keeper (a
   * pool's, see keeper-parking.ts): it becomes the container's cgroup (Runtime.create's or
   * runFast's parkedCgroup).
   */
  parkedCgroup?: Promise<Cgroup | null>;
  /** A start by the restart policy: counted in restartCount. */
  restarted?: boolean;
}

/** The steps of a launch, in order. */
export type LaunchStep = 'mounted' | 'bundle' | 'created' | 'started';

/**
 * Mounts the container's root, writes its OCI bundle and creates and starts it with the
 * runtime. The calling process becomes the parent that must `finish` it after it exits.
 */
export async function launch(ctx: EngineContext, ref: string, o: LaunchOptions): Promise<CreatedContainer> {
  let init = o.init;
  try {
    const r = getRecord(ctx, ref);
    if (r.state.status === 'running')
      throw new EngineError('Conflict', `container ${r.name} is already running`);
    if (o.keeper) {
      // The keeper's init is awaited only at create: its Node start overlaps the mount, the
      // network and the bundle made meanwhile (an init that fails then undoes them).
      init?.kill('SIGKILL');
      init = undefined;
    } else if (r.config.tty && init) {
      // An init started ahead has the caller's stdio; a terminal needs one started on the pty.
      init.kill('SIGKILL');
      init = undefined;
    }
    if (o.keeper) {
      // Named from the first step: a launch whose front-end and keeper die half way leaves a
      // mount and cgroups that the next command takes away (reclaimUnkept).
      const k = keeperIdentity(o.keeper);
      ctx.records.update(r.id, (x) => {
        x.state.watcherPid = k?.pid;
        x.state.keeperStartTime = k?.startTime;
      });
    }
    const dir = ctx.records.dir(r.id);
    const rootfs = join(dir, 'rootfs');
    // Leftovers of a crash between mount and record: unmount, clear the runtime's state.
    const snaps = ctx.snapshots(r.hostConfig.storageDriver);
    snaps.cleanup(rootfs);
    await ctx.runtime.delete(r.id, { force: true }).catch(() => {});
    // The network is made while the root is mounted (the plugins are processes of their own).
    const network = setupNetwork(ctx, r).then(
      (netns) => ({ netns }),
      (error: unknown) => ({ error }),
    );
    const dropNetwork = async () => {
      if (!('error' in (await network))) await teardownNetwork(ctx, r).catch(() => {});
    };
    let mounted: UnionMount;
    try {
      mounted = await mountAll(snaps.mounts(r.id, r.layers), rootfs);
    } catch (e) {
      await dropNetwork();
      throw new EngineError('CannotStart', `mounting the container's root: ${(e as Error).message}`);
    }
    watchStorage(ctx, r.id, mounted);
    try {
      o.onStep?.('mounted');
      const net = await network;
      if ('error' in net) throw net.error;
      checkAborted(o.abort);
      const netns = net.netns;
      writeEtc(ctx, r, rootfs);
      const spec = buildSpec(r, rootfs, netns, o.consoleSize);
      spec.mounts = [...(spec.mounts ?? []), ...ociMounts(ctx, r, rootfs)];
      writeFileSync(join(dir, 'bundle', 'config.json'), JSON.stringify(spec));
      o.onStep?.('bundle');
      checkAborted(o.abort);
      const parkedCgroup = (await o.parkedCgroup) ?? undefined;
      // A detached keeper's own errors go to keeper.log (one started ahead had no folder yet).
      const errorLog = o.detached ? join(dir, 'keeper.log') : undefined;
      const fast = fastKeeper(o.keeper, spec, r);
      if (fast) {
        const created = await runInKeeper(ctx, r.id, fast, o, errorLog, spec, parkedCgroup);
        return started(ctx, r, created, mounted, o, true);
      }
      o.keeper?.requestInit(); // a fast keeper's init, for a container its fast path cannot make
      if (o.keeper)
        init = await o.keeper.init.catch((e: Error) => {
          throw new EngineError('CannotStart', e.message);
        });
      // Without a terminal the keeper needs nothing of the set-up: it attaches what it keeps
      // while the init sets the container up (a round trip less before the start).
      const ownedEarly =
        o.keeper && !r.config.tty ? o.keeper.own(ctx.root, r.id, o.detached, null, errorLog) : null;
      ownedEarly?.catch(() => {}); // a create that fails says why
      const created = await ctx.runtime.create(r.id, join(dir, 'bundle'), {
        stdio: o.stdio,
        detached: false,
        init,
        // A fast keeper's is empty (its init starts only now): its pool removes it.
        parkedCgroup: o.keeper?.fast ? undefined : parkedCgroup,
        // An init started ahead (see spawnInit) has the caller's stdin; a keeper's has what it was given.
        nullStdin:
          (!o.keeper && init !== undefined && Array.isArray(o.stdio) && o.stdio[0] === 'ignore') ||
          // A detached keeper gives its init a stdin pipe: the program keeps it only with -i.
          (o.keeper !== undefined && o.keeper.mode !== 'attached' && !r.config.openStdin),
        initWithoutStdio: o.keeper !== undefined && o.keeper.mode !== 'attached',
        // Whoever is the init's parent keeps it: when that process dies, so does the container.
        dieWithParent: true,
      });
      init = undefined; // the runtime owns it now
      o.onStep?.('created');
      checkAborted(o.abort);
      await (ownedEarly ??
        o.keeper?.own(ctx.root, r.id, o.detached, created.initTerminalFd ?? null, errorLog));
      // A signal taken while this process was busy (the steps above are mostly synchronous) is
      // read at the event loop's next poll, and the keeper owned the container early: let it
      // come before the program runs, so that it still undoes the run (two turns: this turn's
      // poll may be over already).
      await new Promise((r) => setImmediate(() => setImmediate(r)));
      checkAborted(o.abort);
      await ctx.runtime.start(r.id);
      return started(ctx, r, created, mounted, o);
    } catch (e) {
      ctx.releasing.add(r.id);
      await ctx.runtime.delete(r.id, { force: true }).catch(() => {});
      await dropNetwork();
      await snaps.unmount(rootfs);
      throw fromRuntime(e);
    }
  } catch (e) {
    // An init started ahead for this container must not outlive a launch that failed.
    init?.kill('SIGKILL');
    o.keeper?.kill();
    throw e;
  }
}

/**
 * Whether a keeper spawned for this container should be a fast one (no init at once: see
 * KeeperClient.run), from what the record alone says; the spec decides in the end.
 */
export function keeperFastFor(r: ContainerRecord, mode: 'attached' | 'detached'): boolean {
  if (process.env.CORRAL_RUNTIME_FAST === '0' || r.config.tty || r.config.init) return false;
  // A detached program's stdin is /dev/null there: one kept open (-i) needs the init's pipe.
  return mode === 'attached' || !r.config.openStdin;
}

/** The keeper that makes this container itself (KeeperClient.run), if its fast path can. */
function fastKeeper(
  keeper: KeeperClient | undefined,
  spec: OciSpec,
  r: ContainerRecord,
): KeeperClient | null {
  if (!keeper?.fast || keeper.mode === 'tty') return null;
  // What the record asks (a keeper spawned ahead was spawned before it was read), then the spec.
  return keeperFastFor(r, keeper.mode) && fastRunRefusal(spec) === null ? keeper : null;
}

/** Creates and starts the container at once in its keeper (no Node init): see keeper-fast.ts. */
async function runInKeeper(
  ctx: EngineContext,
  id: string,
  keeper: KeeperClient,
  o: LaunchOptions,
  errorLog: string | undefined,
  spec: OciSpec,
  parkedCgroup: Cgroup | undefined,
): Promise<CreatedContainer> {
  await keeper.own(ctx.root, id, o.detached, null, errorLog);
  // As the other path, before the program runs: a signal taken meanwhile still undoes the run.
  await new Promise((r) => setImmediate(() => setImmediate(r)));
  checkAborted(o.abort);
  // Compiled here, where it is kept: a resident front-end (corrald) compiles each profile once,
  // a keeper would compile it again for every container.
  const seccomp = spec.linux?.seccomp ? precompiledProfile(spec.linux.seccomp) : undefined;
  const program = await keeper
    .run(ctx.runtime.root, id, join(ctx.records.dir(id), 'bundle'), {
      seccompProgram: seccomp,
      parkedCgroup: parkedCgroup && posix.basename(parkedCgroup.path),
    })
    .catch((e: Error & { exitCode?: number }) => {
      throw new RuntimeError(e.message, e.exitCode);
    });
  o.onStep?.('created');
  const wait = () => program.wait();
  return {
    id,
    pid: program.pid,
    process: program,
    stdin: null,
    stdout: null,
    stderr: null,
    terminal: null,
    wait,
  };
}

/** The launch's last step: the program runs; the record says so. */
function started(
  ctx: EngineContext,
  r: ContainerRecord,
  created: CreatedContainer,
  mounted: UnionMount,
  o: LaunchOptions,
  ranInKeeper = false,
): CreatedContainer {
  o.keeper?.started();
  o.onStep?.('started');
  // The keeper's program has run since its answer came: a signal taken meanwhile goes to it
  // (the caller passes it on), as one taken later does.
  if (!ranInKeeper) checkAborted(o.abort);
  const keeper = o.keeper
    ? keeperIdentity(o.keeper)
    : { pid: process.pid, startTime: procStartTime(process.pid) };
  ctx.records.update(r.id, (x) => {
    x.state = {
      ...x.state,
      status: 'running',
      pid: created.pid,
      startedAt: new Date().toISOString(),
      finishedAt: null,
      exitCode: null,
      error: null,
      paused: false,
      detached: o.detached,
    };
    x.state.watcherPid = keeper?.pid;
    x.state.keeperStartTime = keeper?.startTime ?? undefined;
    const server = mounted.pid === null ? null : procStartTime(mounted.pid);
    x.state.storagePid = server === null ? undefined : (mounted.pid as number);
    x.state.storageStartTime = server ?? undefined;
    x.state.restarting = false;
    // A start by hand clears a stop by hand; the keeper's own restarts leave it for `stop`.
    if (o.restarted) x.state.restartCount = (x.state.restartCount ?? 0) + 1;
    else x.state.stopRequested = false;
    x.state.networkOwner = undefined;
  });
  ctx.events.emit('container', 'start', r.id, { name: r.name, image: r.image });
  return created;
}

export function checkAborted(abort: AbortSignal | undefined): void {
  if (abort?.aborted)
    throw new EngineError('Unavailable', `interrupted (${String(abort.reason ?? 'aborted')})`);
}

/** Records how a launched container ended and releases its mount (and the container with --rm). */
export async function finish(
  ctx: EngineContext,
  ref: string,
  exitCode: number,
  /** Why the code is not the program's own (its keeper was lost). */
  error?: string,
  /** Who deletes an --rm container's folder, put in the trash (trash.ts); this process if none. */
  deleter?: TrashOwner,
): Promise<string | null> {
  const r = ctx.records.resolve(ref);
  ctx.releasing.add(r.id);
  // The code and time first: a finish interrupted while it releases still leaves them.
  // The unmount below ends a storage server: not a failure for a reconcile meanwhile.
  ctx.records.update(r.id, (x) => {
    x.state.exitCode = exitCode;
    x.state.finishedAt = new Date().toISOString();
    x.state.storagePid = undefined;
  });
  let oomKilled = false;
  try {
    oomKilled = ctx.runtime.oomKills(r.id) > 0;
  } catch {
    // no cgroup left to ask
  }
  await ctx.runtime.delete(r.id, { force: true }).catch(() => {});
  const rootfs = ctx.rootfs(r.id);
  await Promise.all([
    teardownNetwork(ctx, r).catch(() => {}), // what is left, the next Engine.open takes
    ctx.snapshots(r.hostConfig.storageDriver).unmount(rootfs),
  ]);
  const done = ctx.records.update(r.id, (x) => {
    x.state.status = 'exited';
    x.state.exitCode = exitCode;
    x.state.oomKilled = oomKilled;
    x.state.pid = 0;
    if (error) x.state.error = error;
  });
  const attrs = { name: done.name, image: done.image };
  if (oomKilled) ctx.events.emit('container', 'oom', done.id, attrs);
  ctx.events.emit('container', 'die', done.id, { ...attrs, exitCode: String(exitCode) });
  let trash: string | null = null;
  if (done.hostConfig.autoRemove) {
    trash = ctx.records.remove(done, deleter);
    await releaseImage(ctx, done);
    removeAnonymousVolumes(ctx, done);
    ctx.events.emit('container', 'destroy', done.id, attrs);
  }
  return trash;
}

/**
 * Sends a signal to the container's PID 1. A paused (frozen) container is thawed after
 * the signal, as Docker does, or the signal would wait for an unpause that never comes.
 */
export async function signalContainer(
  ctx: EngineContext,
  r: ContainerRecord,
  signal: string | number,
): Promise<void> {
  ctx.runtime.kill(r.id, signal);
  if (r.state.paused) {
    await ctx.runtime.cgroup(r.id)?.thaw();
    ctx.records.update(r.id, (x) => {
      x.state.paused = false;
    });
  }
}

export async function kill(ctx: EngineContext, ref: string, signal = 'SIGKILL'): Promise<ContainerRecord> {
  const signo = signalNumber(signal);
  const r = runningRecord(ctx, ref);
  // Docker's rule: a container ended by hand is not restarted by its policy.
  if (r.hostConfig.restartPolicy) await endRestarts(ctx, r, false);
  try {
    await signalContainer(ctx, r, signo);
  } catch (e) {
    throw fromRuntime(e, `Cannot kill container ${r.name}: `);
  }
  ctx.events.emit('container', 'kill', r.id, { name: r.name, image: r.image, signal: String(signo) });
  return r;
}

/**
 * Marks the container as ended by hand, so that its keeper does not start it again (Docker's
 * HasBeenManuallyStopped); with `wait`, waits until a keeper in its back-off has let go.
 */
async function endRestarts(ctx: EngineContext, r: ContainerRecord, wait: boolean): Promise<ContainerRecord> {
  let now = ctx.records.update(r.id, (x) => {
    x.state.stopRequested = true;
  });
  for (const end = Date.now() + 5000; wait && now.state.restarting && Date.now() < end; ) {
    await sleep(20);
    now = getRecord(ctx, r.id);
  }
  return now;
}

/** Waits until the keeper has recorded the container's exit. */
export async function waitExited(
  ctx: EngineContext,
  ref: string,
  timeoutMs = Number.POSITIVE_INFINITY,
): Promise<ContainerRecord> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const r = getRecord(ctx, ref);
    if (r.state.status !== 'running') return r;
    if (Date.now() > end) throw new EngineError('Unavailable', `container ${r.name} did not stop in time`);
    await sleep(20);
  }
}

/** Docker's stop: the stop signal, then SIGKILL after `timeoutSec` seconds (-1: never). */
export async function stop(ctx: EngineContext, ref: string, timeoutSec?: number): Promise<ContainerRecord> {
  let r = getRecord(ctx, ref);
  // Also between two runs (exited, its keeper about to start the back-off): no restart after.
  if (r.hostConfig.restartPolicy) r = await endRestarts(ctx, r, true);
  if (r.state.status !== 'running') return r;
  const t = timeoutSec ?? r.config.stopTimeout;
  try {
    await signalContainer(ctx, r, r.config.stopSignal);
  } catch {
    // ended meanwhile
  }
  const waitMs = t < 0 ? undefined : t * 1000;
  if (!(await ctx.runtime.waitStopped(r.id, waitMs).catch(() => true))) {
    try {
      await signalContainer(ctx, getRecord(ctx, r.id), 'SIGKILL');
    } catch {
      // ended meanwhile
    }
    await ctx.runtime.waitStopped(r.id).catch(() => true);
  }
  return waitExited(ctx, r.id, 10_000);
}

/** Removes a container: refused while it runs unless `force`, which kills it first. */
export async function removeContainer(
  ctx: EngineContext,
  ref: string,
  /** `volumes`: its anonymous volumes go too (`rm -v`). */
  options: { force?: boolean; volumes?: boolean } = {},
): Promise<ContainerRecord> {
  let r = getRecord(ctx, ref);
  if (r.state.restarting) {
    if (!options.force)
      throw new EngineError(
        'Conflict',
        `You cannot remove a restarting container ${r.id}. Stop the container before attempting removal or force remove`,
      );
    r = await endRestarts(ctx, r, true);
  }
  if (r.state.status === 'running') {
    if (!options.force)
      throw new EngineError(
        'Conflict',
        `You cannot remove a running container ${r.id}. Stop the container before attempting removal or force remove`,
      );
    if (r.hostConfig.restartPolicy) await endRestarts(ctx, r, false);
    try {
      await signalContainer(ctx, r, 'SIGKILL');
    } catch {
      // ended meanwhile
    }
    await ctx.runtime.waitStopped(r.id).catch(() => true);
    r = await waitExited(ctx, r.id, 10_000).catch(() => r);
  }
  await discard(ctx, r, options.volumes);
  return r;
}

/**
 * A removed container's image, when `rmi -f` removed it while the container used it, goes now
 * (with its layers) unless another container still uses it.
 */
async function releaseImage(ctx: EngineContext, r: ContainerRecord): Promise<void> {
  if (r.imageId) await ctx.store.release(r.imageId).catch(() => {});
}

/** Takes away everything a container has: its runtime state, its mount, its folder and name. */
export async function discard(
  ctx: EngineContext,
  r: ContainerRecord,
  /** Its anonymous volumes too (default: for an --rm container, as Docker's auto-remove). */
  volumes = r.hostConfig.autoRemove,
): Promise<void> {
  ctx.releasing.add(r.id);
  await ctx.runtime.delete(r.id, { force: true }).catch(() => {});
  await teardownNetwork(ctx, r).catch(() => {});
  ctx.snapshots(r.hostConfig.storageDriver).cleanup(ctx.rootfs(r.id));
  releaseCopyMounts(ctx.records.dir(r.id)); // roots a killed `cp` left mounted
  if (!ctx.records.read(r.id)) return;
  ctx.records.remove(r);
  await releaseImage(ctx, r);
  if (volumes) removeAnonymousVolumes(ctx, r);
  ctx.events.emit('container', 'destroy', r.id, { name: r.name, image: r.image });
}
