import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import type { CgroupLimits } from '@corral/cgroups';
import { isPrivateOrMissing, privateDir } from '@corral/image';
import type { OciSeccomp, OciStatus, Runtime } from '@corral/runtime';
import { flock, LOCK, procStartTime } from '@corral/sys';
import { EngineError } from './errors.js';
import type { HealthConfig, HealthState } from './health.js';
import type { MountPoint } from './mount-parse.js';
import { NAME_RE, randomName } from './names.js';
import type { ContainerNetwork } from './network-config.js';
import type { RestartPolicy } from './restart.js';
import type { RunRecordParts } from './run-options.js';
import { emptyTrashDir, moveToTrash, type TrashOwner, trashOf } from './trash.js';

/**
 * A container's status, one vocabulary for the engine and its front-ends (Docker's words):
 * `paused` is a running container whose cgroup is frozen (`state.paused`), shown by
 * `statusOf`. The runtime speaks OCI's words (its `OciStatus`); `fromOci` is the one place
 * they become these.
 */
export type ContainerStatus = 'created' | 'running' | 'exited';

/**
 * The runtime's OCI status in Docker's words, the only such mapping in the engine: OCI
 * `stopped` (the init is gone) is Docker's `exited`; OCI `paused` (the cgroup frozen) is
 * Docker's `paused`; `created` and `running` keep their names.
 */
export function fromOci(status: OciStatus): ContainerStatus | 'paused' {
  return status === 'stopped' ? 'exited' : status;
}

/**
 * The runtime's status of container `id` in Docker's words; `exited` when the runtime has no
 * state for it (never created there, or deleted).
 */
export function runtimeStatus(runtime: Pick<Runtime, 'state'>, id: string): ContainerStatus | 'paused' {
  try {
    return fromOci(runtime.state(id).status);
  } catch {
    return 'exited';
  }
}

/** Docker's State.Status of a record: created, running, paused, restarting or exited. */
export function statusOf(r: ContainerRecord): ContainerStatus | 'paused' | 'restarting' {
  if (r.state.restarting) return 'restarting';
  return r.state.status === 'running' && r.state.paused ? 'paused' : r.state.status;
}

/** Limits a container runs with, in Docker's units, and where its cgroup goes. */
export type Resources = CgroupLimits & { cgroupParent?: string };

/** Everything the engine keeps about a container, in ROOT/containers/ID/container.json. */
export interface ContainerRecord {
  id: string;
  name: string;
  created: string;
  /** What the user asked for: an image name, or `--rootfs DIR`. */
  image: string;
  /** The image's id (config digest), or null for a --rootfs container. */
  imageId: string | null;
  /** Read-only layers of the container's root, top first. */
  layers: string[];
  config: {
    cmd: string[];
    env: string[];
    workdir: string;
    hostname: string;
    user: string;
    init: boolean;
    stopSignal: string;
    stopTimeout: number;
    /** A pseudo-terminal as the program's stdin, stdout and stderr (`-t`). */
    tty: boolean;
    /**
     * The program's stdin stays open (`-i`): a detached container's keeper holds it and
     * writes what attached clients send; with `stdinOnce`, only until the first one ends it.
     */
    openStdin?: boolean;
    stdinOnce?: boolean;
    /** The words of `cmd` that are its entrypoint (absent in older records): commit splits by it. */
    entrypoint?: string[];
    /** The image's labels with `--label`s over them (absent in older records). */
    labels?: Record<string, string>;
    /** The health check in force (the container's over the image's); absent: none. */
    healthcheck?: HealthConfig;
  };
  hostConfig: {
    autoRemove: boolean;
    storageDriver: string;
    readonlyRootfs: boolean;
    /** Every capability and device, no masked paths (Docker's --privileged, without host devices). */
    privileged: boolean;
    capAdd: string[];
    capDrop: string[];
    /**
     * `unconfined` (--security-opt seccomp=unconfined), `default` (Docker's profile, resolved
     * at each start), or `custom` (a profile given at create, from a file or inline JSON,
     * resolved then).
     */
    seccomp: 'default' | 'unconfined' | 'custom';
    /** The custom profile, resolved against the container's capabilities. */
    seccompProfile?: OciSeccomp;
    noNewPrivileges: boolean;
    resources: Resources;
    /** Its network (absent in records of versions before networking: the host's). */
    network?: ContainerNetwork;
    /** Binds, volumes and tmpfs mounts, in the order planned (absent in older records: none). */
    mounts?: MountPoint[];
    /** Docker's RestartPolicy, applied by the keeper (absent: no). */
    restartPolicy?: RestartPolicy;
  } & RunRecordParts['hostConfig'];
  state: {
    status: ContainerStatus;
    pid: number;
    startedAt: string | null;
    finishedAt: string | null;
    exitCode: number | null;
    error: string | null;
    oomKilled: boolean;
    /** Frozen by `pause` (the container still counts as running, as in Docker). */
    paused: boolean;
    detached: boolean;
    /** The container's keeper (keeper.ts), which records its exit, with its start time. */
    watcherPid?: number;
    keeperStartTime?: number;
    /** The process serving the container's root (the fuse driver), with its start time. */
    storagePid?: number;
    storageStartTime?: number;
    /** Waiting to start again under its restart policy (Docker's State.Restarting). */
    restarting?: boolean;
    /** Starts by the restart policy so far (Docker's RestartCount). */
    restartCount?: number;
    /** `stop` or `kill` ended it: the restart policy does not start it again (Docker's HasBeenManuallyStopped). */
    stopRequested?: boolean;
    /** The process that runs it attached and removes it (`run --rm`), with its start time. */
    owner?: { pid: number; startTime: number };
    /** The process setting up its network right now (engines opening the root leave it alone). */
    networkOwner?: { pid: number; startTime: number };
    /** The health check's status and last results, while it has one (Docker's State.Health). */
    health?: HealthState;
  };
}

/** Container records and the names that point at them, under ROOT/containers and ROOT/names. */
export class RecordStore {
  readonly containers: string;
  readonly names: string;

  constructor(root: string) {
    this.containers = join(root, 'containers');
    this.names = join(root, 'names');
    const old = !isPrivateOrMissing(this.containers);
    privateDir(this.containers);
    privateDir(this.names);
    // Container folders an older version made 0710 (with containers/ itself).
    if (old)
      for (const e of readdirSync(this.containers, { withFileTypes: true }))
        if (e.isDirectory()) privateDir(this.dir(e.name));
  }

  dir(id: string): string {
    return join(this.containers, id);
  }

  /**
   * Claims a name for `id` atomically (a symlink made with O_EXCL semantics): two creates with
   * one name cannot both win.
   */
  claimName(name: string | undefined, id: string): string {
    if (name !== undefined) {
      if (!NAME_RE.test(name))
        throw new EngineError(
          'InvalidArgument',
          `Invalid container name (${name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`,
        );
      try {
        symlinkSync(id, join(this.names, name));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        const owner = this.nameOwner(name);
        throw new EngineError(
          'Conflict',
          `Conflict. The container name "/${name}" is already in use by container "${owner}". You have to remove (or rename) that container to be able to reuse that name.`,
        );
      }
      return name;
    }
    for (;;) {
      const candidate = randomName();
      try {
        symlinkSync(id, join(this.names, candidate));
        return candidate;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
    }
  }

  releaseName(name: string, id: string): void {
    if (this.nameOwner(name) === id) rmSync(join(this.names, name), { force: true });
  }

  private nameOwner(name: string): string | null {
    try {
      const id = readlinkSync(join(this.names, name));
      return /^[0-9a-f]{64}$/.test(id) ? id : null; // what corral links is an id, nothing else
    } catch {
      return null;
    }
  }

  /**
   * Writes a record: temp file, rename, so a reader never sees half of one. Only the first
   * record of a container that outlives its run waits for the disk (fsync of the file and its
   * folder): a crash would lose that container. A later change lost to a crash comes back as
   * the state before it (reconcile records a container that says running while nothing runs),
   * and an --rm container's folder is reclaimed at the next open: one write-and-rename each.
   */
  write(record: ContainerRecord): void {
    this.#writeIn(this.dir(record.id), record);
  }

  /**
   * Makes a new container's folder with its first record in one step: both are made in the
   * trash under this process's name and renamed into place, so that a create killed half way
   * leaves no folder without a record (the trash of a dead process goes at the next open).
   */
  create(record: ContainerRecord): void {
    const owner = { pid: process.pid, startTime: procStartTime(process.pid) ?? 0 };
    const staging = join(trashOf(this.containers), `new-${record.id}.${owner.pid}.${owner.startTime}`);
    mkdirSync(trashOf(this.containers), { recursive: true, mode: 0o700 });
    mkdirSync(staging, { mode: 0o700 });
    try {
      this.#writeIn(staging, record);
      renameSync(staging, this.dir(record.id));
    } catch (e) {
      emptyTrashDir(staging);
      throw e;
    }
    // The rename is what makes it a container: kept on disk as the record itself is.
    if (!record.hostConfig.autoRemove) syncFolder(this.containers);
  }

  #writeIn(dir: string, record: ContainerRecord): void {
    const path = join(dir, 'container.json');
    const tmp = `${path}.${process.pid}.tmp`;
    const data = JSON.stringify(record, null, 2);
    const durable = !record.hostConfig.autoRemove && !existsSync(path);
    try {
      writeWhole(tmp, data, durable);
    } catch (e) {
      // A container that filled the disk must still get its exit recorded: the spare room
      // kept beside the record is given up for it.
      if ((e as NodeJS.ErrnoException).code !== 'ENOSPC' || !existsSync(join(dir, SPARE))) throw e;
      rmSync(join(dir, SPARE), { force: true });
      writeWhole(tmp, data, durable);
    }
    renameSync(tmp, path);
    if (durable) syncFolder(dir);
    keepSpare(dir);
  }

  /**
   * The stored record, or null when there is none (removed meanwhile). A record that does not
   * parse (a disk fault, a hand edit) is a DAMAGED error naming the file and the repair.
   */
  read(id: string): ContainerRecord | null {
    const path = join(this.dir(id), 'container.json');
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch {
      return null;
    }
    try {
      const r = JSON.parse(text) as ContainerRecord;
      if (!r || typeof r !== 'object' || !r.state || typeof r.state !== 'object')
        throw new Error('not a container record');
      return r;
    } catch (e) {
      throw damagedRecord(path, (e as Error).message.replace(/\s+/g, ' '));
    }
  }

  /**
   * Like read, but a damaged record is `undefined`: for sweeps that run whenever an engine
   * opens its root, which must neither fail every command nor touch what they cannot read
   * (`system check` reports it).
   */
  peek(id: string): ContainerRecord | null | undefined {
    try {
      return this.read(id);
    } catch {
      return undefined;
    }
  }

  /**
   * Applies `change` to the stored record and writes it back, under an exclusive flock of the
   * container's lock file: the CLI and a watcher process updating one record at once both
   * keep their change (the record file itself is replaced by rename, so it cannot hold a lock).
   */
  update(id: string, change: (r: ContainerRecord) => void): ContainerRecord {
    const fd = this.openLock(id, true);
    if (fd === null) throw new EngineError('NotFound', `No such container: ${id}`);
    try {
      flock(fd, LOCK.EX);
      const r = this.read(id);
      if (!r) throw new EngineError('NotFound', `No such container: ${id}`);
      change(r);
      this.write(r);
      return r;
    } finally {
      closeSync(fd); // drops the lock
    }
  }

  /** Record temp files of writers that died between write and rename (a SIGKILLed command). */
  staleTemps(id: string): string[] {
    let names: string[];
    try {
      names = readdirSync(this.dir(id));
    } catch {
      return [];
    }
    return names
      .filter((f) => {
        const m = /^container\.json\.(\d+)\.tmp$/.exec(f);
        return m !== null && procStartTime(Number(m[1])) === null;
      })
      .map((f) => join(this.dir(id), f));
  }

  ids(): string[] {
    return readdirSync(this.containers).filter((id) =>
      existsSync(join(this.containers, id, 'container.json')),
    );
  }

  /** Finds a container by full id, name, or unique id prefix, as Docker does. */
  resolve(ref: string): ContainerRecord {
    if (!ref) throw new EngineError('NotFound', 'No such container: (empty name)');
    // Only a valid name or an id prefix is looked up: a ref such as `../../x` (from the CLI or
    // an API path) never reaches a path outside names/ or containers/.
    const name = ref.replace(/^\//, '');
    const byName = NAME_RE.test(name) ? this.nameOwner(name) : null;
    if (byName) {
      const r = this.read(byName);
      if (r) return r;
    }
    if (/^[0-9a-f]{1,64}$/.test(ref)) {
      const matches = this.ids().filter((id) => id.startsWith(ref));
      if (matches.length > 1)
        throw new EngineError('InvalidArgument', `Multiple IDs found with provided prefix: ${ref}`);
      if (matches.length === 1) {
        const r = this.read(matches[0]);
        if (r) return r;
      }
    }
    throw new EngineError('NotFound', `No such container: ${ref}`);
  }

  /**
   * The container's lock file, opened; null when the container is gone. It is made only while
   * the record exists, so a writer never puts it back into a folder being removed.
   */
  private openLock(id: string, make: boolean): number | null {
    const path = join(this.dir(id), 'container.lock');
    try {
      return openSync(path, 'r+');
    } catch {
      if (!make || !existsSync(join(this.dir(id), 'container.json'))) return null;
      try {
        return openSync(path, 'a', 0o600);
      } catch {
        return null;
      }
    }
  }

  /**
   * Removes the container. With `deleter`, its folder goes into the trash in one rename
   * (trash.ts) and the path returned is that process's to delete; otherwise it is deleted here.
   */
  remove(record: ContainerRecord, deleter?: TrashOwner): string | null {
    this.releaseName(record.name, record.id);
    // Under the record's lock: a writer (a watcher recording the exit) finishes first, and
    // finds the record gone after.
    const fd = this.openLock(record.id, false);
    try {
      if (fd !== null) flock(fd, LOCK.EX);
      // Out of the containers folder in one rename first: a remove killed while it deletes
      // leaves a folder in the trash (the next open deletes it), never half of one here that
      // no command can name any more.
      const self = { pid: process.pid, startTime: procStartTime(process.pid) ?? 0 };
      const moved = moveToTrash(this.containers, this.dir(record.id), record.id, deleter ?? self);
      if (moved && deleter) return moved;
      if (moved) emptyTrashDir(moved);
      // A file made meanwhile (a log rotated by a watcher) must not fail the removal.
      else rmSync(this.dir(record.id), { recursive: true, force: true, maxRetries: 5, retryDelay: 20 });
      return null;
    } finally {
      if (fd !== null) closeSync(fd);
    }
  }
}

/** Room kept beside each record (a file of zeros) for writing it on a full disk. */
const SPARE = 'record.spare';
const SPARE_BYTES = 64 * 1024;

function writeWhole(path: string, data: string, durable: boolean): void {
  try {
    const fd = openSync(path, 'w', 0o600);
    try {
      writeSync(fd, data);
      if (durable) fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch (e) {
    rmSync(path, { force: true });
    throw e;
  }
}

/** Makes a new name in `dir` durable (fsync of the folder). */
function syncFolder(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Makes the spare room again when it is missing (quietly not, on a disk that is still full). */
function keepSpare(dir: string): void {
  const spare = join(dir, SPARE);
  if (existsSync(spare)) return;
  try {
    // Its blocks are taken when written; a crash that loses it only loses the reserve.
    writeWhole(spare, '\0'.repeat(SPARE_BYTES), false);
  } catch {
    // still full: the next write tries again
  }
}

/** A state file that does not parse: named; the repair is data (`repair`), worded by each front-end. */
export function damagedRecord(path: string, why: string): EngineError {
  return new EngineError('Unavailable', `the state file ${path} is damaged (${why})`, {
    repair: 'system-check',
  });
}

export function unlinkQuiet(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // already gone
  }
}
