import {
  closeSync,
  existsSync,
  fsyncSync,
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
import type { OciSeccomp } from '@corral/runtime';
import { flock, LOCK } from '@corral/sys';
import { EngineError } from './errors.js';
import { NAME_RE, randomName } from './names.js';
import type { MountPoint } from './mount-parse.js';
import type { ContainerNetwork } from './network-config.js';
import type { HealthConfig, HealthState } from './health.js';
import type { RestartPolicy } from './restart.js';
import type { RunRecordParts } from './run-options.js';

/**
 * A container's status, one vocabulary for the engine and its front-ends (Docker's words):
 * `paused` is a running container whose cgroup is frozen (`state.paused`), shown by
 * `statusOf`; the runtime's own `stopped` is an engine's `exited`.
 */
export type ContainerStatus = 'created' | 'running' | 'exited';

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

  /** Writes a record: temp file, fsync, rename, so a reader never sees half of one. */
  write(record: ContainerRecord): void {
    const path = join(this.dir(record.id), 'container.json');
    const tmp = `${path}.${process.pid}.tmp`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, JSON.stringify(record, null, 2));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  }

  read(id: string): ContainerRecord | null {
    try {
      return JSON.parse(readFileSync(join(this.dir(id), 'container.json'), 'utf8')) as ContainerRecord;
    } catch {
      return null;
    }
  }

  /**
   * Applies `change` to the stored record and writes it back, under an exclusive flock of the
   * container's lock file: the CLI and a watcher process updating one record at once both
   * keep their change (the record file itself is replaced by rename, so it cannot hold a lock).
   */
  update(id: string, change: (r: ContainerRecord) => void): ContainerRecord {
    let fd: number;
    try {
      fd = openSync(join(this.dir(id), 'container.lock'), 'a', 0o600);
    } catch {
      throw new EngineError('NotFound', `No such container: ${id}`);
    }
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

  remove(record: ContainerRecord): void {
    this.releaseName(record.name, record.id);
    rmSync(this.dir(record.id), { recursive: true, force: true });
  }
}

export function unlinkQuiet(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // already gone
  }
}
