import { spawn } from 'node:child_process';
import {
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  openSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join, resolve } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { type CgroupLimits, type CgroupStats, validateLimits } from '@corral/cgroups';
import {
  type ContainerConfig,
  commit as commitImage,
  ensureBusyboxImage,
  exportRootfs,
  type ImageRecord,
  ImageStore,
  privateDir,
} from '@corral/image';
import { namespaceTree, type Pid1Process, type ProcessNode } from '@corral/pidns';
import { type CreatedContainer, type OciProcess, Runtime, RuntimeError } from '@corral/runtime';
import { parseSignal, procStartTime } from '@corral/sys';
import { type Change, cleanupStale, diffUpper, getUnionFs, type UnionMount } from '@corral/unionfs';
import { EngineError } from './errors.js';
import { type LogEntry, LogWriter, type ReadLogsOptions, readLogs } from './logs.js';
import { newId, shortId } from './names.js';
import { type ContainerRecord, RecordStore, type Resources } from './records.js';
import { seccompOption } from './seccomp.js';
import {
  buildSpec,
  capabilitiesFor,
  capabilityNames,
  cgroupPathOf,
  containerEnv,
  resolveUser,
} from './spec.js';
import { attachTerminal, terminalOutput } from './terminal.js';

/** The data root: `--root`, then CORRAL_ROOT, then /var/lib/corral (like Docker's data-root). */
export function defaultRoot(): string {
  return process.env.CORRAL_ROOT || '/var/lib/corral';
}

export interface CreateContainerOptions {
  /** An image name, or null with `rootfs`. */
  image?: string;
  /** A pseudo-terminal for the program (`-t`). */
  tty?: boolean;
  privileged?: boolean;
  /** Capabilities beyond Docker's defaults, and ones to take away (`ALL` for every one). */
  capAdd?: string[];
  capDrop?: string[];
  /**
   * Docker's default seccomp profile (`default`), none (`unconfined`), or a profile in Docker's
   * format read from a file (`--security-opt seccomp=FILE`), checked and resolved at create.
   */
  seccomp?: 'default' | 'unconfined' | { file: string };
  /** no_new_privs: setuid binaries and file capabilities grant nothing. */
  noNewPrivileges?: boolean;
  /** Replaces the image's entrypoint ('' for none); the image's Cmd is then dropped too. */
  entrypoint?: string;
  /** A folder to use as the container's (read-only) root layer. */
  rootfs?: string;
  cmd: string[];
  name?: string;
  env?: string[];
  workdir?: string;
  hostname?: string;
  user?: string;
  init?: boolean;
  autoRemove?: boolean;
  storageDriver?: string;
  readonlyRootfs?: boolean;
  stopSignal?: string;
  stopTimeout?: number;
  resources?: Resources;
}

export interface ExecOptions {
  cmd: string[];
  env?: string[];
  workdir?: string;
  user?: string;
  tty?: boolean;
  interactive?: boolean;
  detach?: boolean;
}

export type Stdio = [
  'ignore' | 'inherit' | 'pipe',
  'ignore' | 'inherit' | 'pipe',
  'ignore' | 'inherit' | 'pipe',
];

/** A container's summary for `ps`. */
export interface ContainerSummary {
  id: string;
  name: string;
  image: string;
  command: string;
  created: string;
  status: string;
  state: ContainerRecord['state']['status'];
  exitCode: number | null;
}

const shimScript = fileURLToPath(new URL('./shim.js', import.meta.url));
// A watcher lives as long as its container: one V8 helper thread is plenty. (Heap flags were
// measured and changed nothing: bench/engine/watcher-memory.mjs.)
const WATCHER_NODE_FLAGS = ['--v8-pool-size=1'];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Containers as users know them. Every command of the CLI (and of the daemon) is a method
 * here: the apps only parse and print.
 */
export class Engine {
  readonly root: string;
  readonly records: RecordStore;
  readonly runtime: Runtime;
  readonly images: ImageStore;

  constructor(options: { root?: string } = {}) {
    this.root = resolve(options.root ?? defaultRoot());
    // The root and every state folder in it are 0700, also in a root an older version made
    // 0711/0755: no container needs to walk them, and other users must not (see the image
    // package's state-dir.ts for why nothing needs more).
    privateDir(this.root);
    this.records = new RecordStore(this.root);
    this.images = new ImageStore(join(this.root, 'image'));
    privateDir(join(this.root, 'runtime'));
    this.runtime = new Runtime({ root: join(this.root, 'runtime') });
  }

  /**
   * What a container's root is made of and what its image says to run: a folder given with
   * --rootfs, or an image from the store (the embedded busybox is made on first use).
   */
  private async resolveRoot(
    options: CreateContainerOptions,
  ): Promise<{ image: string; imageId: string | null; layers: string[]; config: ContainerConfig }> {
    if (options.rootfs) {
      const dir = resolve(options.rootfs);
      if (!existsSync(dir) || !statSync(dir).isDirectory())
        throw new EngineError(`rootfs ${dir} does not exist or is not a directory`, 125);
      return { image: dir, imageId: null, layers: [dir], config: {} };
    }
    const ref = options.image ?? '';
    let record = this.images.resolve(ref);
    if (!record && isBusybox(ref)) record = await ensureBusyboxImage(this.images);
    if (!record) throw new EngineError(`Unable to find image '${ref}' locally: pull or load it first`, 125);
    const config = (await this.images.readConfig(record.configDigest)).config ?? {};
    return { image: ref, imageId: record.id, layers: this.images.layerDirs(record.id).reverse(), config };
  }

  /** Makes a container (Docker's `create`): a record, a name, a writable layer; nothing runs yet. */
  async create(options: CreateContainerOptions): Promise<ContainerRecord> {
    const storageDriver = options.storageDriver ?? 'overlay';
    try {
      getUnionFs(storageDriver);
    } catch (e) {
      throw new EngineError(`storage driver ${storageDriver}: ${(e as Error).message}`, 125);
    }
    const resources = checkResources(options.resources ?? {});
    // Unknown capability names and a bad seccomp profile fail here, before anything is made.
    const caps = capabilityNames({
      privileged: options.privileged ?? false,
      capAdd: options.capAdd ?? [],
      capDrop: options.capDrop ?? [],
    } as ContainerRecord['hostConfig']);
    const seccomp = seccompOption(options.seccomp, caps);
    const { image, imageId, layers, config } = await this.resolveRoot(options);
    // Docker's rules: --entrypoint replaces the image's and drops its Cmd; arguments replace Cmd.
    const entrypoint =
      options.entrypoint !== undefined
        ? options.entrypoint
          ? [options.entrypoint]
          : []
        : (config.Entrypoint ?? []);
    const args = options.cmd.length
      ? options.cmd
      : options.entrypoint !== undefined
        ? []
        : (config.Cmd ?? []);
    const cmd = [...entrypoint, ...args];
    if (!cmd.length) throw new EngineError('No command specified', 125);
    const stopSignal = options.stopSignal ?? config.StopSignal ?? 'SIGTERM';
    parseSignalOr125(stopSignal);
    const id = newId();
    const name = this.records.claimName(options.name, id);
    const record: ContainerRecord = {
      id,
      name,
      created: new Date().toISOString(),
      image,
      imageId,
      layers,
      config: {
        cmd,
        env: [...(config.Env ?? []), ...(options.env ?? [])],
        workdir: options.workdir ?? (config.WorkingDir || '/'),
        hostname: options.hostname ?? shortId(id),
        user: options.user ?? config.User ?? '',
        init: options.init ?? false,
        tty: options.tty ?? false,
        stopSignal,
        stopTimeout: options.stopTimeout ?? 10,
      },
      hostConfig: {
        autoRemove: options.autoRemove ?? false,
        storageDriver,
        readonlyRootfs: options.readonlyRootfs ?? false,
        privileged: options.privileged ?? false,
        capAdd: options.capAdd ?? [],
        capDrop: options.capDrop ?? [],
        ...seccomp,
        noNewPrivileges: options.noNewPrivileges ?? false,
        resources,
      },
      state: {
        status: 'created',
        pid: 0,
        startedAt: null,
        finishedAt: null,
        exitCode: null,
        error: null,
        oomKilled: false,
        paused: false,
        detached: false,
      },
    };
    try {
      const dir = this.records.dir(id);
      mkdirSync(dir, { mode: 0o700 });
      for (const sub of ['upper', 'work', 'rootfs', 'bundle']) mkdirSync(join(dir, sub), { mode: 0o755 });
      this.records.write(record);
    } catch (e) {
      this.records.remove(record);
      throw e;
    }
    return record;
  }

  get(ref: string): ContainerRecord {
    return this.reconcile(this.records.resolve(ref));
  }

  /**
   * A record that says "running" while its process is gone (its watcher was killed) is
   * brought up to date here, so no command ever shows a dead container as running.
   */
  private reconcile(r: ContainerRecord): ContainerRecord {
    if (r.state.status !== 'running' || this.processAlive(r)) return r;
    const watcher = r.state.watcherPid;
    if (watcher && procStartTime(watcher) !== null) return r; // the watcher is about to record the exit
    return this.records.update(r.id, (x) => {
      x.state.status = 'exited';
      x.state.exitCode ??= 255;
      x.state.finishedAt ??= new Date().toISOString();
      x.state.error ??= 'the process watching this container ended before it did';
    });
  }

  private processAlive(r: ContainerRecord): boolean {
    try {
      return this.runtime.state(r.id).status !== 'stopped';
    } catch {
      return false;
    }
  }

  /**
   * Mounts the container's root, writes its OCI bundle and creates and starts it with the
   * runtime. The calling process becomes the parent that must `finish` it after it exits.
   */
  async launch(
    ref: string,
    stdio: Stdio,
    detached: boolean,
    init?: Pid1Process,
    consoleSize?: { height: number; width: number },
  ): Promise<CreatedContainer> {
    try {
      return await this.launchWith(ref, stdio, detached, init, consoleSize);
    } catch (e) {
      // An init started ahead for this container must not outlive a launch that failed.
      init?.kill('SIGKILL');
      throw e;
    }
  }

  private async launchWith(
    ref: string,
    stdio: Stdio,
    detached: boolean,
    init?: Pid1Process,
    consoleSize?: { height: number; width: number },
  ): Promise<CreatedContainer> {
    const r = this.get(ref);
    if (r.state.status === 'running') throw new EngineError(`container ${r.name} is already running`);
    if (r.config.tty && init) {
      // An init started ahead has the caller's stdio; a terminal needs one started on the pty.
      init.kill('SIGKILL');
      init = undefined;
    }
    const dir = this.records.dir(r.id);
    const rootfs = join(dir, 'rootfs');
    // Leftovers of a crash between mount and record: unmount, clear the runtime's state.
    cleanupStale(rootfs);
    await this.runtime.delete(r.id, { force: true }).catch(() => {});
    rmSync(join(dir, 'work'), { recursive: true, force: true });
    mkdirSync(join(dir, 'work'));
    const union = getUnionFs(r.hostConfig.storageDriver);
    let mounted: UnionMount;
    try {
      mounted = await union.mount({
        lower: r.layers,
        upper: join(dir, 'upper'),
        work: join(dir, 'work'),
        target: rootfs,
      });
    } catch (e) {
      throw new EngineError(`mounting the container's root: ${(e as Error).message}`, 125);
    }
    this.watchStorage(r.id, mounted);
    try {
      const etc = this.writeEtcFiles(r);
      const spec = buildSpec(r, rootfs, etc, consoleSize);
      writeFileSync(join(dir, 'bundle', 'config.json'), JSON.stringify(spec, null, 2));
      const created = await this.runtime.create(r.id, join(dir, 'bundle'), {
        stdio,
        detached: false,
        init,
        // An init started ahead (see spawnInit) has the caller's stdin.
        nullStdin: init !== undefined && stdio[0] === 'ignore',
      });
      await this.runtime.start(r.id);
      this.records.update(r.id, (x) => {
        x.state = {
          ...x.state,
          status: 'running',
          pid: created.pid,
          startedAt: new Date().toISOString(),
          finishedAt: null,
          exitCode: null,
          error: null,
          paused: false,
          detached,
        };
        x.state.watcherPid = process.pid;
      });
      return created;
    } catch (e) {
      await union.unmount(rootfs, { detach: true }).catch(() => {});
      await this.runtime.delete(r.id, { force: true }).catch(() => {});
      if (e instanceof RuntimeError) throw new EngineError(e.message, e.exitCode);
      throw e;
    }
  }

  /**
   * A root served by a process (the fuse driver) whose server ends while the container runs
   * leaves a root that answers ENOTCONN: the container is killed and recorded as failed.
   */
  private watchStorage(id: string, m: UnionMount): void {
    if (m.pid === null) return;
    m.closed.then((exit) => {
      if (this.releasing.has(id)) return;
      const r = this.records.read(id);
      if (r?.state.status !== 'running') return;
      this.records.update(id, (x) => {
        x.state.error = `the storage server (pid ${m.pid}) of the container's root ended (${exit.signal ?? `exit code ${exit.code}`}): its files are gone from under it`;
      });
      try {
        this.runtime.kill(id, 'SIGKILL');
      } catch {
        // ended meanwhile
      }
    });
  }

  /** Containers whose root this process is unmounting on purpose. */
  private readonly releasing = new Set<string>();

  /** Records how a launched container ended and releases its mount (and the container with --rm). */
  async finish(ref: string, exitCode: number): Promise<void> {
    const r = this.records.resolve(ref);
    this.releasing.add(r.id);
    let oomKilled = false;
    try {
      oomKilled = (this.runtime.cgroup(r.id)?.stats().memory.oomKills ?? 0) > 0;
    } catch {
      // no cgroup left to ask
    }
    await this.runtime.delete(r.id, { force: true }).catch(() => {});
    await getUnionFs(r.hostConfig.storageDriver)
      .unmount(join(this.records.dir(r.id), 'rootfs'), { detach: true })
      .catch(() => cleanupStale(join(this.records.dir(r.id), 'rootfs')));
    const done = this.records.update(r.id, (x) => {
      x.state.status = 'exited';
      x.state.exitCode = exitCode;
      x.state.oomKilled = oomKilled;
      x.state.finishedAt = new Date().toISOString();
      x.state.pid = 0;
    });
    if (done.hostConfig.autoRemove) this.records.remove(done);
  }

  /**
   * Runs a container attached to this process's stdio and resolves with its exit code.
   * Signals this process receives are passed on (Docker's sig-proxy).
   */
  async runAttached(
    ref: string,
    options: { interactive?: boolean; init?: Pid1Process } = {},
  ): Promise<number> {
    const r = this.get(ref);
    let created: CreatedContainer;
    try {
      const stdio: Stdio = [options.interactive ? 'inherit' : 'ignore', 'inherit', 'inherit'];
      const out = process.stdout;
      const size = out.isTTY ? { height: out.rows, width: out.columns } : undefined;
      created = await this.launch(r.id, stdio, false, options.init, size);
    } catch (e) {
      this.records.remove(this.records.read(r.id) ?? r);
      throw e;
    }
    const detachTerminal =
      created.terminal !== null ? attachTerminal(created.terminal, options.interactive ?? false) : null;
    const forward = (sig: NodeJS.Signals) => {
      try {
        this.runtime.kill(r.id, sig);
      } catch {
        // it has ended
      }
    };
    const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'];
    for (const s of signals) process.on(s, forward);
    try {
      const code = await created.wait();
      await detachTerminal?.();
      await this.finish(r.id, code);
      return code;
    } finally {
      for (const s of signals) process.off(s, forward);
    }
  }

  /**
   * Starts a container in the background under a watcher process (the shim) that keeps its
   * output in the log and records its exit. Resolves once the program is running.
   */
  async startDetached(ref: string): Promise<ContainerRecord> {
    const r = this.get(ref);
    const shimLog = openSync(join(this.records.dir(r.id), 'shim.log'), 'a');
    const shim = spawn(process.execPath, [...WATCHER_NODE_FLAGS, shimScript, this.root, r.id], {
      detached: true,
      stdio: ['ignore', 'ignore', shimLog, 'pipe'],
    });
    const answer = await new Promise<{ ok: true } | { ok: false; message: string; exitCode: number }>(
      (resolveAnswer) => {
        let buf = '';
        const pipe = shim.stdio[3] as Readable;
        pipe.on('data', (d: Buffer) => {
          buf += d.toString();
          if (buf.includes('\n')) resolveAnswer(JSON.parse(buf.slice(0, buf.indexOf('\n'))));
        });
        shim.on('exit', (code) =>
          resolveAnswer({
            ok: false,
            message: `the container's watcher exited with code ${code}: see ${join(this.records.dir(r.id), 'shim.log')}`,
            exitCode: 125,
          }),
        );
      },
    );
    (shim.stdio[3] as Readable).destroy();
    shim.unref();
    if (!answer.ok) {
      const now = this.records.read(r.id);
      if (now) this.records.remove(now);
      throw new EngineError(answer.message, answer.exitCode);
    }
    return this.get(r.id);
  }

  list(options: { all?: boolean } = {}): ContainerSummary[] {
    const out: ContainerSummary[] = [];
    for (const id of this.records.ids()) {
      const raw = this.records.read(id);
      if (!raw) continue;
      const r = this.reconcile(raw);
      if (!options.all && r.state.status !== 'running') continue;
      out.push({
        id: r.id,
        name: r.name,
        image: r.image,
        command: r.config.cmd.join(' '),
        created: r.created,
        status: describeStatus(r),
        state: r.state.status,
        exitCode: r.state.exitCode,
      });
    }
    return out.sort((a, b) => b.created.localeCompare(a.created));
  }

  private running(ref: string): ContainerRecord {
    const r = this.get(ref);
    if (r.state.status !== 'running') throw new EngineError(`Container ${r.name} is not running`);
    return r;
  }

  async kill(ref: string, signal = 'SIGKILL'): Promise<ContainerRecord> {
    const signo = parseSignalOr125(signal, 1);
    const r = this.running(ref);
    try {
      await this.signal(r, signo);
    } catch (e) {
      if (e instanceof RuntimeError) throw new EngineError(`Cannot kill container ${r.name}: ${e.message}`);
      throw e;
    }
    return r;
  }

  /**
   * Sends a signal to the container's PID 1. A paused (frozen) container is thawed after
   * the signal, as Docker does, or the signal would wait for an unpause that never comes.
   */
  private async signal(r: ContainerRecord, signal: string | number): Promise<void> {
    this.runtime.kill(r.id, signal);
    if (r.state.paused) {
      await this.runtime.cgroup(r.id)?.thaw();
      this.records.update(r.id, (x) => {
        x.state.paused = false;
      });
    }
  }

  /** docker pause: freezes every process of the container (cgroup freezer). */
  async pause(ref: string): Promise<ContainerRecord> {
    const r = this.running(ref);
    if (r.state.paused) throw new EngineError(`Container ${r.id} is already paused`);
    const cgroup = this.runtime.cgroup(r.id);
    if (!cgroup) throw new EngineError(`container ${r.name} has no cgroup to freeze`);
    await cgroup.freeze();
    return this.records.update(r.id, (x) => {
      x.state.paused = true;
    });
  }

  /** docker unpause: thaws a paused container. */
  async unpause(ref: string): Promise<ContainerRecord> {
    const r = this.running(ref);
    if (!r.state.paused) throw new EngineError(`Container ${r.id} is not paused`);
    await this.runtime.cgroup(r.id)?.thaw();
    return this.records.update(r.id, (x) => {
      x.state.paused = false;
    });
  }

  /** Waits until the watcher has recorded the container's exit. */
  async waitExited(ref: string, timeoutMs = Number.POSITIVE_INFINITY): Promise<ContainerRecord> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const r = this.get(ref);
      if (r.state.status !== 'running') return r;
      if (Date.now() > end) throw new EngineError(`container ${r.name} did not stop in time`);
      await sleep(20);
    }
  }

  /** Docker's stop: the stop signal, then SIGKILL after `timeoutSec` seconds. */
  async stop(ref: string, timeoutSec?: number): Promise<ContainerRecord> {
    const r = this.get(ref);
    if (r.state.status !== 'running') return r;
    const t = timeoutSec ?? r.config.stopTimeout;
    try {
      await this.signal(r, r.config.stopSignal);
    } catch {
      // ended meanwhile
    }
    if (!(await this.runtime.waitStopped(r.id, t * 1000).catch(() => true))) {
      try {
        await this.signal(this.get(r.id), 'SIGKILL');
      } catch {
        // ended meanwhile
      }
      await this.runtime.waitStopped(r.id).catch(() => true);
    }
    return this.waitExited(r.id, 10_000);
  }

  /** docker commit: the container's changes become a new layer on top of its image. */
  async commitContainer(
    ref: string,
    options: { name?: string; author?: string; message?: string; pause?: boolean } = {},
  ): Promise<ImageRecord> {
    const r = this.get(ref);
    // Docker's --pause (the default): a running container is frozen while its layer is read,
    // so the layer is one moment of it. Unpaused, the read still never follows what the
    // container changes meanwhile (diffLayer walks by fds, O_NOFOLLOW).
    const freeze = options.pause !== false && r.state.status === 'running' && !r.state.paused;
    if (freeze) await this.pause(r.id);
    try {
      return await commitImage(this.images, {
        base: r.imageId ?? undefined,
        upperDir: join(this.records.dir(r.id), 'upper'),
        names: options.name ? [options.name] : [],
        author: options.author,
        message: options.message,
        createdBy: r.config.cmd.join(' '),
      });
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
    const dir = this.records.dir(r.id);
    const target = join(dir, 'export');
    mkdirSync(target, { recursive: true });
    cleanupStale(target);
    const union = getUnionFs(r.hostConfig.storageDriver);
    const mount = await union.mount({ lower: [join(dir, 'upper'), ...r.layers], target });
    try {
      await pipeline(exportRootfs(target), out);
    } finally {
      await mount.unmount({ detach: true });
      rmSync(target, { recursive: true, force: true });
    }
  }

  /**
   * Makes sure the embedded images among `refs` exist (the embedded busybox is built on first
   * use), so that `save busybox` or `tag busybox x` work in a fresh data root too.
   */
  async ensureEmbeddedImages(refs: readonly string[]): Promise<void> {
    for (const ref of refs)
      if (isBusybox(ref) && !this.images.resolve(ref)) await ensureBusyboxImage(this.images);
  }

  /** docker wait: blocks until the container is not running and resolves with its exit code. */
  async wait(ref: string): Promise<number> {
    const r = await this.waitExited(ref);
    return r.state.exitCode ?? 255;
  }

  /** docker restart: stop (stop signal, then SIGKILL after the timeout), then start detached. */
  async restart(ref: string, timeoutSec?: number): Promise<ContainerRecord> {
    const r = await this.stop(ref, timeoutSec);
    return this.startDetached(r.id);
  }

  /** docker rename: the new name is claimed first, so a taken name changes nothing. */
  rename(ref: string, name: string): ContainerRecord {
    const r = this.get(ref);
    this.records.claimName(name, r.id);
    const old = r.name;
    const updated = this.records.update(r.id, (x) => {
      x.name = name;
    });
    this.records.releaseName(old, r.id);
    return updated;
  }

  /** True when a container (any state) was made from the image with this id. */
  imageInUse(imageId: string): boolean {
    return this.records.ids().some((id) => this.records.read(id)?.imageId === imageId);
  }

  /** Removes a container: refused while it runs unless `force`, which kills it first. */
  async remove(ref: string, options: { force?: boolean } = {}): Promise<ContainerRecord> {
    let r = this.get(ref);
    if (r.state.status === 'running') {
      if (!options.force)
        throw new EngineError(
          `You cannot remove a running container ${r.id}. Stop the container before attempting removal or force remove`,
        );
      try {
        await this.signal(r, 'SIGKILL');
      } catch {
        // ended meanwhile
      }
      await this.runtime.waitStopped(r.id).catch(() => true);
      r = await this.waitExited(r.id, 10_000).catch(() => r);
    }
    await this.runtime.delete(r.id, { force: true }).catch(() => {});
    cleanupStale(join(this.records.dir(r.id), 'rootfs'));
    this.records.remove(r);
    return r;
  }

  /**
   * docker exec: runs another program in a running container, attached to this process's
   * stdio (or its terminal with `tty`), and resolves with its exit code. With `detach` it
   * resolves with 0 once the program runs.
   */
  async exec(ref: string, options: ExecOptions): Promise<number> {
    const r = this.running(ref);
    if (r.state.paused)
      throw new EngineError(`Container ${r.id} is paused, unpause the container before exec`);
    if (!options.cmd.length) throw new EngineError('exec needs a command', 1);
    const rootfs = join(this.records.dir(r.id), 'rootfs');
    const env = [...containerEnv(r), ...(options.env ?? [])];
    const user = resolveUser(options.user ?? r.config.user, rootfs);
    const out = process.stdout;
    const proc: OciProcess = {
      args: options.cmd,
      env: options.tty && !env.some((e) => e.startsWith('TERM=')) ? [...env, 'TERM=xterm'] : env,
      cwd: options.workdir || r.config.workdir || '/',
      user,
      capabilities: capabilitiesFor(r, user.uid),
      terminal: options.tty ?? false,
      ...(options.tty && out.isTTY ? { consoleSize: { height: out.rows, width: out.columns } } : {}),
    };
    const stdin = options.interactive && !options.detach ? 'inherit' : 'ignore';
    const io = options.detach ? 'ignore' : 'inherit';
    let created: CreatedContainer;
    try {
      created = await this.runtime.exec(r.id, proc, { stdio: [stdin, io, io] });
    } catch (e) {
      if (e instanceof RuntimeError) throw new EngineError(e.message, e.exitCode);
      throw e;
    }
    if (options.detach) {
      created.process.child.unref();
      if (created.terminal !== null) closeSync(created.terminal);
      return 0;
    }
    const detachTerminal =
      created.terminal !== null ? attachTerminal(created.terminal, options.interactive ?? false) : null;
    const forward = (sig: NodeJS.Signals) => created.process.kill(sig);
    const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'];
    for (const sig of signals) process.on(sig, forward);
    try {
      const code = await created.wait();
      await detachTerminal?.();
      return code;
    } finally {
      for (const sig of signals) process.off(sig, forward);
    }
  }

  /** Live usage of a running container, from its cgroup. */
  stats(ref: string): { record: ContainerRecord; stats: CgroupStats } {
    const r = this.running(ref);
    const cgroup = this.runtime.cgroup(r.id);
    if (!cgroup) throw new EngineError(`container ${r.name} has no cgroup`);
    return { record: r, stats: cgroup.stats() };
  }

  /** The record plus, while it runs, the limits the kernel enforces (read back from its cgroup). */
  inspect(ref: string): ContainerRecord & { limitsInForce: CgroupLimits | null; cgroupPath: string } {
    const r = this.get(ref);
    let limitsInForce: CgroupLimits | null = null;
    if (r.state.status === 'running') {
      try {
        limitsInForce = this.runtime.cgroup(r.id)?.limits() ?? null;
      } catch {
        // ended meanwhile
      }
    }
    return { ...r, limitsInForce, cgroupPath: cgroupPathOf(r) };
  }

  /** The container's process tree with host PIDs and PIDs inside. */
  top(ref: string): ProcessNode[] {
    const r = this.running(ref);
    return namespaceTree(r.state.pid);
  }

  logPath(id: string): string {
    return join(this.records.dir(id), `${id}-json.log`);
  }

  logs(ref: string, options: Omit<ReadLogsOptions, 'isDone'> = {}): AsyncGenerator<LogEntry> {
    const r = this.get(ref);
    return readLogs(this.logPath(r.id), {
      ...options,
      isDone: () => this.get(r.id).state.status !== 'running',
    });
  }

  /** What the container changed in its root, read from its writable layer. */
  diff(ref: string): Change[] {
    const r = this.get(ref);
    return diffUpper(join(this.records.dir(r.id), 'upper'), r.layers);
  }

  /** A detached container's watcher: launch, keep the logs, record the exit. */
  async watch(id: string, report: (msg: object) => void, init?: Pid1Process): Promise<void> {
    let created: CreatedContainer;
    try {
      created = await this.launch(id, ['ignore', 'pipe', 'pipe'], true, init);
    } catch (e) {
      report({
        ok: false,
        message: (e as Error).message,
        exitCode: e instanceof EngineError ? e.exitCode : 125,
      });
      return;
    }
    const log = new LogWriter(this.logPath(id));
    if (created.terminal !== null) {
      // With a terminal both streams are one: Docker logs it all as stdout.
      log.attach(terminalOutput(created.terminal), 'stdout');
    } else {
      log.attach(created.stdout!, 'stdout');
      log.attach(created.stderr!, 'stderr');
    }
    report({ ok: true });
    const code = await created.wait();
    await log.finished;
    await this.finish(id, code);
  }

  private writeEtcFiles(r: ContainerRecord): { hosts: string; hostname: string; resolvConf: string } {
    const dir = this.records.dir(r.id);
    const hosts = join(dir, 'hosts');
    const hostname = join(dir, 'hostname');
    const resolvConf = join(dir, 'resolv.conf');
    writeFileSync(hostname, `${r.config.hostname}\n`);
    writeFileSync(
      hosts,
      `127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t${r.config.hostname}\n`,
    );
    try {
      copyFileSync('/etc/resolv.conf', resolvConf);
    } catch {
      writeFileSync(resolvConf, '');
    }
    return { hosts, hostname, resolvConf };
  }
}

/** Checks limits against what this host can enforce, before anything is made (exit 125). */
function checkResources(resources: Resources): Resources {
  const { cgroupParent, ...limits } = resources;
  if (!Object.values(limits).some((v) => v !== undefined)) return resources;
  try {
    return { ...validateLimits(limits), ...(cgroupParent ? { cgroupParent } : {}) };
  } catch (e) {
    throw new EngineError((e as Error).message, 125);
  }
}

function parseSignalOr125(signal: string, exitCode = 125): number {
  try {
    return parseSignal(signal);
  } catch {
    throw new EngineError(`invalid signal: ${signal}`, exitCode);
  }
}

/** How long ago `iso` was, as Docker words it: `Less than a second`, `3 seconds`, `2 hours`. */
export function since(iso: string | null): string {
  if (!iso) return '';
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 1) return 'Less than a second';
  if (s < 60) return `${Math.floor(s)} seconds`;
  if (s < 3600) return `${Math.floor(s / 60)} minutes`;
  if (s < 86400) return `${Math.floor(s / 3600)} hours`;
  return `${Math.floor(s / 86400)} days`;
}

/** Docker's STATUS column: `Up 3 seconds`, `Exited (3) 2 minutes ago`, `Created`. */
export function describeStatus(r: ContainerRecord): string {
  if (r.state.status === 'running')
    return `Up ${since(r.state.startedAt)}${r.state.paused ? ' (Paused)' : ''}`;
  if (r.state.status === 'exited') return `Exited (${r.state.exitCode}) ${since(r.state.finishedAt)} ago`;
  return 'Created';
}

function isBusybox(ref: string): boolean {
  return [
    'busybox',
    'busybox:latest',
    'docker.io/library/busybox:latest',
    'docker.io/library/busybox',
  ].includes(ref);
}
