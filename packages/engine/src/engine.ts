import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { CgroupLimits } from '@corral/cgroups';
import { type ContainerConfig, commit as commitImage, exportRootfs, type ImageRecord } from '@corral/image';
import type { PortMapping } from '@corral/network';
import type { ProcessNode } from '@corral/pidns';
import { namespaceTree } from '@corral/pidns';
import { type Change, diffUpper, mountAll } from '@corral/unionfs';
import { type EngineInfo, type EngineVersion, engineInfo, engineVersion } from './about.js';
import { EngineArchive } from './archive/index.js';
import {
  type AttachOptions,
  type ExecOptions,
  execIn,
  type ProcessHandle,
  type RunExtras,
  runAttached,
} from './attach.js';
import { changedConfig } from './changes.js';
import { type ContainerSummary, type ListOptions, listContainers } from './container-list.js';
import { EngineContext, type EngineOptions } from './context.js';
import { type CreateContainerOptions, checkTimeout, createContainer } from './create.js';
import { startDetached } from './detached.js';
import { EngineError, engineOp, onFullDisk } from './errors.js';
import type { EngineEvent, ReadEventsOptions } from './events.js';
import {
  type ContainerFilters,
  containerSize,
  type DiskUsage,
  diskUsage,
  pruneContainers,
} from './housekeeping.js';
import { EngineImages } from './images.js';
import type { KeeperClient } from './keeper-client.js';
import type { KeeperPoolStatus } from './keeper-pool.js';
import { connectStdin, type KeptStdin } from './keeper-stdin.js';
import {
  checkAborted,
  discard,
  getRecord,
  kill,
  reconcile,
  removeContainer,
  runningRecord,
  stop,
  waitExited,
} from './lifecycle.js';
import { type LogEntry, type ReadLogsOptions, readLogBatches, readLogs } from './logs.js';
import { type MountView, mountViews } from './mounts.js';
import { portsOf } from './network.js';
import { EngineNetworks, type NetworkSettingsView } from './networks.js';
import { reclaimAbandoned, reclaimDue, reclaimNetworks, reclaimUnkept } from './reclaim.js';
import type { ContainerRecord } from './records.js';
import { cgroupPathOf } from './spec.js';
import { readStats, type StatsSample, type StatsStreamOptions, statsStream } from './stats.js';
import { type SystemCheckResult, systemCheck } from './system-check.js';
import { EngineVolumes } from './volumes.js';

const ETC_FILES = new Set(['/etc/hosts', '/etc/hostname', '/etc/resolv.conf']);

export type { ContainerSummary };

/**
 * Containers and images as users know them: every command of the CLI (and every endpoint of
 * the daemon) is a method here; the front-ends only parse, print and bind streams. Nothing
 * here touches this process's stdio or signals: programs come back as ProcessHandles.
 */
export class Engine {
  readonly #ctx: EngineContext;
  /** Images: list, pull, push, load, save, import, tag, rmi, prune (Docker's image endpoints). */
  readonly images: EngineImages;
  /** Networks: create, list, inspect, remove, connect, disconnect, prune (Docker's network endpoints). */
  readonly networks: EngineNetworks;
  /** A container's files: Docker's archive endpoints and docker cp both ways. */
  readonly archive: EngineArchive;
  /** Volumes: create, list, inspect, remove, prune (Docker's volume endpoints, the local driver). */
  readonly volumes: EngineVolumes;
  /** The data root as a whole: `check` is its fsck (`corral system check [--repair]`). */
  readonly system: { check(options?: { repair?: boolean }): Promise<SystemCheckResult> };

  constructor(options: EngineOptions = {}) {
    this.#ctx = new EngineContext(options);
    this.images = new EngineImages(this.#ctx);
    this.networks = new EngineNetworks(this.#ctx);
    this.archive = new EngineArchive(this.#ctx);
    this.volumes = new EngineVolumes(this.#ctx);
    const ctx = this.#ctx;
    this.system = { check: (options) => systemCheck(ctx, options) };
  }

  /**
   * An engine whose data root is cleared of what interrupted runs left (an `--rm` run killed
   * while it set its container up, or SIGKILLed): the way a front-end should open one.
   */
  static async open(options: EngineOptions = {}): Promise<Engine> {
    const e = new Engine(options);
    // A read-only front-end (`corral ps`) skips the reclaim unless it would change what it
    // lists; `never` (`corral images`) for one that reads nothing the reclaim changes.
    const reclaim = options.reclaim ?? 'always';
    if (reclaim === 'always' || (reclaim === 'if-needed' && reclaimDue(e.#ctx))) {
      await reclaimAbandoned(e.#ctx);
      await reclaimUnkept(e.#ctx);
      await reclaimNetworks(e.#ctx);
    }
    if (options.resident) e.#ctx.startPool(options.resident);
    return e;
  }

  /** The keepers started ahead (a resident engine's pool), or null without one. */
  pool(): KeeperPoolStatus | null {
    return this.#ctx.pool?.status() ?? null;
  }

  /** Ends what this engine keeps running for itself (the pool's parked keepers and inits). */
  async close(): Promise<void> {
    await this.#ctx.pool?.close();
  }

  get root(): string {
    return this.#ctx.root;
  }

  /** `docker version`'s server half; opens nothing (also Engine.version() without an engine). */
  version(): EngineVersion {
    return engineVersion();
  }

  static version(): EngineVersion {
    return engineVersion();
  }

  /** `docker info`: containers by state, images, drivers, kernel, runtimes, data root. */
  info(): EngineInfo {
    const containers = this.list({ all: true }).map((c) => ({
      state: c.state,
      paused: c.status.endsWith('(Paused)'),
    }));
    return engineInfo(this.#ctx.root, containers, this.images.list().length);
  }

  /** Makes a container (Docker's `create`): a record, a name, a writable layer; nothing runs yet. */
  create(options: CreateContainerOptions): Promise<ContainerRecord> {
    return onFullDisk(this.#ctx.root, () => createContainer(this.#ctx, options));
  }

  /**
   * Creates a container and runs it attached (`docker run` without -d): the program's streams
   * as `io` says, its handle returned once it runs. When `abort` fires before that, whatever
   * the run made is removed and the call fails.
   */
  async run(
    options: CreateContainerOptions,
    io: AttachOptions,
    extra: RunExtras = {},
  ): Promise<ProcessHandle> {
    let r: ContainerRecord;
    try {
      r = await this.create({ ...options, owner: process.pid, signal: extra.abort });
    } catch (e) {
      // An init or keeper started ahead must not outlive a run that failed.
      extra.init?.kill('SIGKILL');
      extra.keeper?.kill();
      throw e;
    }
    try {
      extra.onStep?.('record');
      checkAborted(extra.abort);
    } catch (e) {
      extra.init?.kill('SIGKILL');
      extra.keeper?.kill();
      await discard(this.#ctx, r);
      throw e;
    }
    return onFullDisk(this.#ctx.root, () => runAttached(this.#ctx, r.id, io, extra));
  }

  /** Starts a created container attached: see `run`. */
  attach(ref: string, io: AttachOptions, extra: RunExtras = {}): Promise<ProcessHandle> {
    return runAttached(this.#ctx, ref, io, extra);
  }

  /**
   * Starts a container in the background under a watcher process that keeps its output in
   * the log and records its exit. Resolves once the program is running.
   */
  start(ref: string, extra: { keeper?: KeeperClient } = {}): Promise<ContainerRecord> {
    return onFullDisk(this.#ctx.root, () => startDetached(this.#ctx, ref, extra.keeper));
  }

  get(ref: string): ContainerRecord {
    return getRecord(this.#ctx, ref);
  }

  /** docker ps with Docker's filters: see listContainers. */
  list(options: ListOptions = {}): ContainerSummary[] {
    const ctx = this.#ctx;
    return listContainers(
      ctx,
      { get: (ref) => getRecord(ctx, ref), fresh: (r) => reconcile(ctx, r) },
      options,
    );
  }

  /** docker ps -s: bytes of the container's writable layer, and with its image's. */
  size(ref: string): { rw: number; rootFs: number } {
    return containerSize(this.#ctx, this.get(ref));
  }

  /** docker container prune: containers not running (filters: until, label, label!). */
  pruneContainers(filters: ContainerFilters = {}): Promise<{ deleted: string[]; spaceReclaimed: number }> {
    return pruneContainers(this.#ctx, (id) => this.remove(id), filters);
  }

  /** docker system df: images, containers and volumes with their sizes. */
  diskUsage(): DiskUsage {
    const volumes = this.volumes.list().map((v) => ({
      name: v.Name,
      mountpoint: v.Mountpoint,
      labels: v.Labels,
      refCount: this.list({ all: true }).filter((c) =>
        this.inspect(c.id).mounts.some((m) => m.Name === v.Name),
      ).length,
    }));
    return diskUsage(this.#ctx, volumes);
  }

  /**
   * docker system prune: stopped containers, unused networks, dangling images (every unused
   * one with `all`), and with `volumes` unused anonymous volumes, in Docker's order.
   */
  async systemPrune(options: { all?: boolean; volumes?: boolean } = {}) {
    const containers = await this.pruneContainers();
    const networks = await this.networks.prune();
    const volumes = options.volumes ? this.volumes.prune() : { removed: [], spaceReclaimed: 0 };
    const images = await this.images.prune({ all: options.all });
    return {
      containers: containers.deleted,
      networks,
      volumes: volumes.removed,
      images: images.deletedImages,
      spaceReclaimed: containers.spaceReclaimed + volumes.spaceReclaimed + images.reclaimedBytes,
    };
  }

  kill(ref: string, signal = 'SIGKILL'): Promise<ContainerRecord> {
    return kill(this.#ctx, ref, signal);
  }

  /** docker pause: freezes every process of the container (cgroup freezer). */
  async pause(ref: string): Promise<ContainerRecord> {
    const r = runningRecord(this.#ctx, ref);
    if (r.state.paused) throw new EngineError('Conflict', `Container ${r.id} is already paused`);
    const cgroup = this.#ctx.runtime.cgroup(r.id);
    if (!cgroup) throw new EngineError('Unavailable', `container ${r.name} has no cgroup to freeze`);
    await cgroup.freeze();
    const done = this.#ctx.records.update(r.id, (x) => {
      x.state.paused = true;
    });
    this.#ctx.events.emit('container', 'pause', r.id, { name: r.name, image: r.image });
    return done;
  }

  /** docker unpause: thaws a paused container. */
  async unpause(ref: string): Promise<ContainerRecord> {
    const r = runningRecord(this.#ctx, ref);
    if (!r.state.paused) throw new EngineError('Conflict', `Container ${r.id} is not paused`);
    await this.#ctx.runtime.cgroup(r.id)?.thaw();
    const done = this.#ctx.records.update(r.id, (x) => {
      x.state.paused = false;
    });
    this.#ctx.events.emit('container', 'unpause', r.id, { name: r.name, image: r.image });
    return done;
  }

  /** Docker's stop: the stop signal, then SIGKILL after `timeoutSec` seconds (-1: never). */
  stop(ref: string, timeoutSec?: number): Promise<ContainerRecord> {
    return stop(this.#ctx, ref, checkTimeout(timeoutSec));
  }

  /** docker restart: stop (stop signal, then SIGKILL after the timeout), then start detached. */
  async restart(ref: string, timeoutSec?: number): Promise<ContainerRecord> {
    const r = await this.stop(ref, timeoutSec);
    return this.start(r.id);
  }

  /** docker wait: blocks until the container is not running and resolves with its exit code. */
  async wait(ref: string): Promise<number> {
    const r = await waitExited(this.#ctx, ref);
    return r.state.exitCode ?? 255;
  }

  /** docker rename: the new name is claimed first, so a taken name changes nothing. */
  rename(ref: string, name: string): ContainerRecord {
    const { records, events } = this.#ctx;
    const r = this.get(ref);
    records.claimName(name, r.id);
    const old = r.name;
    const updated = records.update(r.id, (x) => {
      x.name = name;
    });
    records.releaseName(old, r.id);
    events.emit('container', 'rename', r.id, { name, oldName: old, image: r.image });
    return updated;
  }

  /** Removes a container: refused while it runs unless `force`, which kills it first. */
  remove(ref: string, options: { force?: boolean; volumes?: boolean } = {}): Promise<ContainerRecord> {
    return removeContainer(this.#ctx, ref, options);
  }

  /** docker exec: another program in a running container, as a handle (see ProcessHandle). */
  exec(ref: string, options: ExecOptions, io: AttachOptions = {}): Promise<ProcessHandle> {
    return execIn(this.#ctx, ref, options, io);
  }

  /** Live usage of a running container, from its cgroup. */
  stats(ref: string) {
    const s = readStats(this.#ctx, ref);
    return { record: this.get(s.id), stats: s.stats };
  }

  /** Docker's stats stream: rounds of samples, each with the one before (`precpu`). */
  statsStream(options: StatsStreamOptions = {}): AsyncGenerator<StatsSample[]> {
    return statsStream(this.#ctx, options);
  }

  /** docker port: the ports published for a running container (none when it is not running). */
  ports(ref: string): PortMapping[] {
    const r = this.get(ref);
    return r.state.status === 'running' ? portsOf(this.#ctx, r) : [];
  }

  /** The record plus, while it runs, the limits the kernel enforces and its network settings. */
  inspect(ref: string): ContainerRecord & {
    limitsInForce: CgroupLimits | null;
    cgroupPath: string;
    networkSettings: NetworkSettingsView;
    mounts: MountView[];
    /** Starts by the restart policy (Docker's RestartCount). */
    restartCount: number;
  } {
    const r = this.get(ref);
    let limitsInForce: CgroupLimits | null = null;
    if (r.state.status === 'running') {
      try {
        limitsInForce = this.#ctx.runtime.cgroup(r.id)?.limits() ?? null;
      } catch {
        // ended meanwhile
      }
    }
    return {
      ...r,
      limitsInForce,
      cgroupPath: cgroupPathOf(r),
      networkSettings: this.networks.settingsOf(r),
      mounts: mountViews(this.#ctx, r),
      restartCount: r.state.restartCount ?? 0,
    };
  }

  /**
   * The stdin of a running detached container made with `openStdin` (-i), which its keeper
   * holds: what is written reaches the program; ending the stream ends the program's stdin
   * only with `stdinOnce`, `leave()` never does (a detach, or a client gone); `resize` sets
   * its terminal's size (-t). Survives the front-end (a restarted daemon attaches again).
   */
  async stdin(ref: string): Promise<KeptStdin> {
    const r = runningRecord(this.#ctx, ref);
    if (!r.config.openStdin)
      throw new EngineError('Conflict', `container ${r.name} was not created with an open stdin (-i)`);
    if (!r.state.detached)
      throw new EngineError('Conflict', `container ${r.name} runs attached: its stdin is its client's`);
    return connectStdin(this.#ctx.records.dir(r.id)).catch((e: Error) => {
      throw new EngineError('Conflict', `container ${r.name}: its keeper does not take stdin (${e.message})`);
    });
  }

  /** Sets the terminal size of a running detached -t container (its keeper holds the terminal); quiet otherwise. */
  async resize(ref: string, cols: number, rows: number): Promise<void> {
    const r = runningRecord(this.#ctx, ref);
    if (!r.config.tty || !r.state.detached) return;
    const kept = await connectStdin(this.#ctx.records.dir(r.id)).catch(() => null);
    kept?.resize(cols, rows);
    kept?.leave();
  }

  /** The container's process tree with host PIDs and PIDs inside. */
  top(ref: string): ProcessNode[] {
    return namespaceTree(runningRecord(this.#ctx, ref).state.pid);
  }

  /**
   * The container's log. With `follow`, entries as they are written until the container is
   * not running; with `untilExit` too, a created container is waited for while it starts (a
   * front-end opens the log, then starts the container, and reads every line).
   */
  logs(
    ref: string,
    options: Omit<ReadLogsOptions, 'isDone'> & { untilExit?: boolean } = {},
  ): AsyncGenerator<LogEntry> {
    return this.#readLogs(ref, options, readLogs);
  }

  /** `logs` in batches, as each read of the log finds them (for front-ends that stream them). */
  logBatches(
    ref: string,
    options: Omit<ReadLogsOptions, 'isDone'> & { untilExit?: boolean } = {},
  ): AsyncGenerator<LogEntry[]> {
    return this.#readLogs(ref, options, readLogBatches);
  }

  #readLogs<T>(
    ref: string,
    options: Omit<ReadLogsOptions, 'isDone'> & { untilExit?: boolean },
    read: (path: string, options: ReadLogsOptions) => AsyncGenerator<T>,
  ): AsyncGenerator<T> {
    const r = this.get(ref);
    const { untilExit, ...rest } = options;
    return read(this.#ctx.logPath(r.id), {
      ...rest,
      // The exit this process records ends a follower at once (its die event).
      pause: (ms) => this.#ctx.events.next(ms),
      isDone: () => {
        try {
          const status = this.get(r.id).state.status;
          return status === 'exited' || (status === 'created' && !untilExit);
        } catch {
          return true; // removed (--rm): what it wrote is still read through the open log
        }
      },
    });
  }

  /** What the container changed in its root, read from its writable layer. */
  diff(ref: string): Change[] {
    const r = this.get(ref);
    const changes = diffUpper(this.#ctx.snapshots(r.hostConfig.storageDriver).upper(r.id), r.layers);
    // The /etc files corral writes at each start are the engine's, not the program's (Docker's
    // bind-mounted copies never show either); /etc itself only when something else changed in it.
    const kept = changes.filter((c) => !ETC_FILES.has(c.path));
    return kept.some((c) => c.path.startsWith('/etc/')) ? kept : kept.filter((c) => c.path !== '/etc');
  }

  /** Docker's event stream (see EventLog.read): past events with `since`, then new ones. */
  events(options: ReadEventsOptions = {}): AsyncGenerator<EngineEvent> {
    return this.#ctx.events.read(options);
  }

  /** docker commit: the container's changes become a new layer on top of its image. */
  async commitContainer(
    ref: string,
    options: {
      name?: string;
      author?: string;
      message?: string;
      pause?: boolean;
      /** Dockerfile instructions for the new image's config (docker commit --change). */
      changes?: string[];
      /** Config fields over the image's, before the changes (the API's commit body). */
      config?: ContainerConfig;
      /** Hears the new layer's bytes read so far (a front-end's progress display). */
      onProgress?: (bytes: number) => void;
    } = {},
  ): Promise<ImageRecord> {
    const r = this.get(ref);
    const config = await engineOp(() =>
      changedConfig(this.#ctx.store, r.imageId, options.config, options.changes, r.config),
    );
    // Docker's --pause (the default): a running container is frozen while its layer is read,
    // so the layer is one moment of it. Unpaused, the read still never follows what the
    // container changes meanwhile (diffLayer walks by fds, O_NOFOLLOW).
    const freeze = options.pause !== false && r.state.status === 'running' && !r.state.paused;
    if (freeze) await this.pause(r.id);
    try {
      const image = await engineOp(() =>
        commitImage(this.#ctx.store, {
          base: r.imageId ?? undefined,
          upperDir: this.#ctx.snapshots(r.hostConfig.storageDriver).upper(r.id),
          names: options.name ? [options.name] : [],
          author: options.author,
          message: options.message,
          createdBy: r.config.cmd.join(' '),
          config,
          onProgress: options.onProgress,
          // Docker's are bind mounts, never in the container's layer: a committed image keeps its own.
          exclude: [...ETC_FILES].map((f) => f.slice(1)),
        }),
      );
      this.#ctx.events.emit('container', 'commit', r.id, { name: r.name, image: r.image });
      return image;
    } finally {
      if (freeze) await this.unpause(r.id).catch(() => {}); // ended meanwhile: nothing to thaw
    }
  }

  /**
   * docker export: the container's whole filesystem as a tar, read through a read-only union
   * of its layer and its image's layers, mounted for the time of the export.
   */
  async exportContainer(ref: string, out: Writable): Promise<void> {
    const r = this.get(ref);
    const dir = this.#ctx.records.dir(r.id);
    const target = join(dir, 'export');
    mkdirSync(target, { recursive: true });
    const mount = await mountAll(
      this.#ctx.snapshots(r.hostConfig.storageDriver).view(r.id, r.layers),
      target,
    );
    try {
      await pipeline(exportRootfs(target), out);
    } finally {
      await mount.unmount({ detach: true });
      rmSync(target, { recursive: true, force: true });
    }
  }
}
