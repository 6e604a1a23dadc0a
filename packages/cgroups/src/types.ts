import type { ProcCgroup } from './host.js';
import type { CgroupCapabilities, CgroupLimits } from './limits.js';

/** Usage of one cgroup; the same shape from both backends. Bytes and nanoseconds. */
export interface CgroupStats {
  /** When the sample was taken, ms since the epoch. */
  read: number;
  memory: {
    /** Memory charged to the cgroup, page cache included. */
    usage: number;
    /** The limit in force, or the host's RAM when there is none (as docker reports it). */
    limit: number;
    /** Page cache (v1 total_cache, v2 file). */
    cache: number;
    /** Inactive page cache (v1 total_inactive_file, v2 inactive_file). */
    inactiveFile: number;
    /** Highest usage seen (v1 max_usage_in_bytes, v2 memory.peak; 0 where the kernel has none). */
    maxUsage: number;
    /** Processes the OOM killer ended in this cgroup. */
    oomKills: number;
  };
  cpu: {
    /** CPU time used, in ns: total, user and system. */
    total: number;
    user: number;
    system: number;
    /** CFS periods that ran, that were throttled, and the time spent throttled (ns). */
    periods: number;
    throttledPeriods: number;
    throttledTime: number;
    /** CPU time of the whole host in ns (docker's system_cpu_usage) and its online CPUs. */
    systemUsage: number;
    onlineCpus: number;
  };
  pids: { current: number; limit: number | null };
  blkio: { read: number; write: number };
}

/** One container's cgroup. Backends: CgroupV1 (one hierarchy per controller) and CgroupV2. */
export interface Cgroup {
  readonly backend: 'v1' | 'v2';
  /** The path as asked for (relative to our own cgroup unless absolute). */
  readonly path: string;
  /** The resolved cgroup path in each hierarchy (v1: per controller set, v2: `unified`). */
  readonly paths: Readonly<Record<string, string>>;
  /** The directory of the cgroup in each hierarchy. */
  readonly dirs: Readonly<Record<string, string>>;
  /** True when the cgroup exists (in every hierarchy). */
  exists(): boolean;
  /** Makes the cgroup; fails with code EXISTS when it is there already (it may not be ours). */
  create(): void;
  /**
   * Moves a process (all its threads) into the cgroup; only deeper into its own subtree.
   * 'self': the calling process, written as 0, for a caller in a PID namespace of its own
   * (the kernel reads a written PID in the writer's PID namespace).
   */
  addProcess(pid: number | 'self', options?: AddProcessOptions): void;
  /**
   * addProcess with the writes to cgroup.procs done on libuv's thread pool: the first such
   * write can wait for an RCU grace period (cgroup_threadgroup_rwsem, 5-20 ms here), which
   * then blocks no event loop.
   */
  addProcessAsync(pid: number, options?: AddProcessOptions): Promise<void>;
  /**
   * Gives this cgroup's folders the names of `to`'s, which must not exist yet: its processes
   * and settings stay, nothing is moved. Then `to` exists and this handle's cgroup does not.
   * v1 only, and only beneath the same parent in every hierarchy (code EXDEV otherwise, EXISTS
   * when `to` is there); v2 refuses (code ENOTSUP: the kernel answers EPERM to a rename).
   */
  renameTo(to: Cgroup): void;
  /** What this cgroup can enforce: controllers, CPUs, memory nodes, swap accounting. */
  capabilities(): CgroupCapabilities;
  /** Checks limits against capabilities() and resolves them (see checkLimits); writes nothing. */
  validate(limits: CgroupLimits): CgroupLimits;
  /** Validates, then writes the limits; returns the limits as resolved and written. */
  apply(limits: CgroupLimits): CgroupLimits;
  /** The limits in force, read back from the kernel's files (unlimited ones left out). */
  limits(): CgroupLimits;
  stats(): CgroupStats;
  /** stats().memory.oomKills alone: one file read (what a container's end asks, not a stats sample). */
  oomKills(): number;
  /** PIDs in the cgroup and the cgroups beneath it. */
  processes(): number[];
  /** Stops every process in the cgroup and resolves once the kernel reports them frozen. */
  freeze(): Promise<void>;
  thaw(): Promise<void>;
  /**
   * Signals every process (default SIGKILL). With SIGKILL resolves once the cgroup is empty.
   */
  killAll(signal?: number | string): Promise<void>;
  /** Removes the cgroup and the parents this object created; waits for dying processes. */
  remove(): Promise<void>;
}

export interface AddProcessOptions {
  /**
   * A cgroup the caller made and put the process in (a pool's parking cgroup): there the
   * process counts as in that cgroup's parent, so it may go to a sibling as well as deeper.
   */
  from?: Cgroup;
}

export interface OpenCgroupOptions {
  /** The cgroup's name or path: relative to our own cgroup (or to `parent`), or absolute. */
  path: string;
  /** `--cgroup-parent`: relative to our own cgroup, or absolute. */
  parent?: string;
  /** Backend by name, or `auto` (default): v2 on a unified host, v1 on v1 and hybrid hosts. */
  backend?: 'v1' | 'v2' | 'auto';
  /**
   * v2 only: the cgroup2 mount to use (default: the host's). A folder that is not a cgroup2
   * mount is used as a scratch tree of plain files laid out like one.
   */
  root?: string;
  /**
   * The cgroups that relative paths resolve against (as in /proc/PID/cgroup), when not this
   * process's own: a runtime that created a container's cgroup from another process stores
   * its creator's, so that later commands find the same cgroup wherever they run.
   */
  own?: ProcCgroup[];
  /** How long freeze, thaw, killAll and remove wait for the kernel (ms, default 10000). */
  timeoutMs?: number;
}
