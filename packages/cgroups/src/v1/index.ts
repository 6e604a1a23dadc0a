import { mkdirSync, renameSync, rmdirSync } from 'node:fs';
import { posix } from 'node:path';
import { type MountInfo, parseSignal } from '@corral/sys';
import {
  checkBeneath,
  checkPid,
  dirsBetween,
  notCreated,
  placeOf,
  refuseSelf,
  removeDir,
  resolveCgroupPath,
  signalEach,
  subtreeDeepestFirst,
  waitForLeaving,
} from '../common.js';
import { CgroupError } from '../errors.js';
import {
  exists,
  readControl,
  readKeyed,
  readNumber,
  readPids,
  waitFor,
  writeControl,
  writeControlAsync,
} from '../files.js';
import {
  cgroupDir,
  hostCpuTime,
  hostMemory,
  onlineCpus,
  onlineMems,
  readProcCgroups,
  USER_HZ,
  v1Mounts,
} from '../host.js';
import { type CgroupCapabilities, type CgroupLimits, checkLimits } from '../limits.js';
import type { AddProcessOptions, Cgroup, CgroupStats, OpenCgroupOptions } from '../types.js';
import { parseCpuList } from '../units.js';

interface Hierarchy {
  /** Its controllers joined by commas, as in /proc/PID/cgroup (`cpu`, `name=systemd`). */
  name: string;
  controllers: string[];
  mountPoint: string;
  /** Our own cgroup in this hierarchy. */
  own: string;
  /** The container's cgroup path and directory. */
  cgroup: string;
  dir: string;
  /** Directories this object made, top first. */
  created: string[];
}

/** The kernel reports "no limit" as a page-aligned LONG_MAX; anything this large is unlimited. */
const UNLIMITED = 2 ** 62;

const SIGKILL = 9;

const sameSet = (a: string[], b: string[]) => a.length === b.length && a.every((x) => b.includes(x));

/** cgroup v1: one directory per mounted hierarchy (cpu and cpuacct may be separate mounts). */
export class CgroupV1 implements Cgroup {
  readonly backend = 'v1' as const;
  readonly path: string;
  readonly paths: Readonly<Record<string, string>>;
  readonly dirs: Readonly<Record<string, string>>;
  private readonly hierarchies: Hierarchy[];
  private readonly timeoutMs: number;

  constructor(opts: OpenCgroupOptions & { mounts?: MountInfo[] }) {
    if (opts.root !== undefined)
      throw new CgroupError(
        'EINVAL',
        'the root option applies to the v2 backend only (v1 hierarchies come from /proc/self/mountinfo)',
      );
    this.path = opts.path;
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    const own = opts.own ?? readProcCgroups('self');
    this.hierarchies = [];
    for (const m of v1Mounts(opts.mounts)) {
      const mine = own.find((c) => sameSet(c.controllers, m.controllers));
      if (!mine) continue;
      const cgroup = resolveCgroupPath(mine.path, opts.path, opts.parent);
      const dir = cgroupDir(m.mountPoint, m.root, cgroup);
      if (dir === null)
        throw new CgroupError(
          'OUTSIDE',
          `cgroup ${cgroup} is not visible in the ${m.controllers.join(',')} mount at ${m.mountPoint} (it shows ${m.root} only)`,
        );
      this.hierarchies.push({
        name: mine.controllers.join(','),
        controllers: m.controllers,
        mountPoint: m.mountPoint,
        own: mine.path,
        cgroup,
        dir,
        created: [],
      });
    }
    if (this.hierarchies.length === 0)
      throw new CgroupError('NOCGROUPFS', 'no cgroup v1 hierarchy is mounted: use the v2 backend');
    this.paths = Object.fromEntries(this.hierarchies.map((h) => [h.name, h.cgroup]));
    this.dirs = Object.fromEntries(this.hierarchies.map((h) => [h.name, h.dir]));
  }

  private hierarchy(controller: string): Hierarchy | undefined {
    return this.hierarchies.find((h) => h.controllers.includes(controller));
  }

  private file(controller: string, name: string): string | null {
    const h = this.hierarchy(controller);
    return h ? posix.join(h.dir, name) : null;
  }

  exists(): boolean {
    return this.hierarchies.every((h) => exists(h.dir));
  }

  create(): void {
    const present = this.hierarchies.filter((h) => exists(h.dir));
    if (present.length)
      throw new CgroupError(
        'EXISTS',
        `cgroup ${present[0].dir} exists already: another container may use this name, or an earlier one was not removed`,
        present[0].dir,
      );
    try {
      for (const h of this.hierarchies) {
        for (const dir of dirsBetween(h.mountPoint, h.dir)) {
          if (exists(dir)) continue;
          mkdirSync(dir);
          h.created.push(dir);
          // A new cpuset starts with no CPUs and no memory nodes: tasks cannot join until set.
          if (h.controllers.includes('cpuset')) {
            for (const f of ['cpuset.cpus', 'cpuset.mems']) {
              if (readControl(posix.join(dir, f)) === '')
                writeControl(posix.join(dir, f), readControl(posix.join(posix.dirname(dir), f)) ?? '');
            }
          }
        }
      }
    } catch (e) {
      this.rmdirCreatedNow();
      if (e instanceof CgroupError) throw e;
      const code = (e as NodeJS.ErrnoException).code ?? 'EIO';
      throw new CgroupError(code, `creating cgroup ${this.path} failed: ${(e as Error).message}`, undefined, {
        cause: e,
      });
    }
  }

  /** Undoes a half-done create(): the directories are empty, so plain rmdir works. */
  private rmdirCreatedNow(): void {
    for (const h of this.hierarchies) {
      for (const dir of h.created.splice(0).reverse()) {
        try {
          rmdirSync(dir);
        } catch {
          // Best effort while reporting the first error.
        }
      }
    }
  }

  addProcess(pid: number | 'self', options: AddProcessOptions = {}): void {
    for (const procs of this.procsFiles(pid, options)) writeControl(procs, pid === 'self' ? 0 : pid);
  }

  async addProcessAsync(pid: number, options: AddProcessOptions = {}): Promise<void> {
    for (const procs of this.procsFiles(pid, options)) await writeControlAsync(procs, pid);
  }

  /** addProcess's checks; the cgroup.procs files to write the PID to. */
  private procsFiles(pid: number | 'self', { from }: AddProcessOptions): string[] {
    if (pid !== 'self') checkPid(pid);
    const current = readProcCgroups(pid);
    for (const h of this.hierarchies) {
      const at = current.find(
        (c) => c.controllers.join(',') === h.name || sameSet(c.controllers, h.controllers),
      );
      if (at) checkBeneath(pid, placeOf(at.path, from?.paths[h.name]), h.cgroup, `${h.name} cgroup `, h.dir);
    }
    if (!this.exists()) throw notCreated(this.path);
    return this.hierarchies.map((h) => posix.join(h.dir, 'cgroup.procs'));
  }

  renameTo(to: Cgroup): void {
    const pairs = this.hierarchies.map((h) => ({
      h,
      t: to instanceof CgroupV1 ? to.hierarchies.find((x) => x.name === h.name) : undefined,
    }));
    if (!(to instanceof CgroupV1) || to.hierarchies.length !== pairs.length || pairs.some((p) => !p.t))
      throw new CgroupError(
        'EXDEV',
        `cgroup ${to.path} is not in the same v1 hierarchies as ${this.path}: it cannot be renamed to it`,
      );
    for (const { h, t } of pairs)
      if (posix.dirname(h.dir) !== posix.dirname(t!.dir))
        throw new CgroupError(
          'EXDEV',
          `cgroup ${t!.cgroup} has another parent than ${h.cgroup}: the kernel renames a v1 cgroup only beneath its own parent`,
          t!.dir,
        );
    if (!this.exists()) throw notCreated(this.path);
    const taken = pairs.find(({ t }) => exists(t!.dir));
    if (taken) throw new CgroupError('EXISTS', `cgroup ${taken.t!.dir} exists already`, taken.t!.dir);
    const done: typeof pairs = [];
    for (const p of pairs) {
      try {
        renameSync(p.h.dir, p.t!.dir);
        done.push(p);
      } catch (e) {
        // All or nothing: the hierarchies done so far get their old names back.
        for (const { h, t } of done.reverse()) {
          try {
            renameSync(t!.dir, h.dir);
          } catch {
            // Best effort while reporting the first error.
          }
        }
        const code = (e as NodeJS.ErrnoException).code ?? 'EIO';
        throw new CgroupError(code, `renaming cgroup ${p.h.dir} to ${p.t!.dir} failed: ${code}`, p.h.dir, {
          cause: e,
        });
      }
    }
    // What this handle made (parents, the folder itself) is the new one's to remove now.
    for (const { h, t } of pairs) t!.created = h.created.splice(0).map((d) => (d === h.dir ? t!.dir : d));
  }

  capabilities(): CgroupCapabilities {
    const controllers = [
      ...new Set(this.hierarchies.flatMap((h) => h.controllers.filter((c) => !c.startsWith('name=')))),
    ];
    const nearest = (controller: string): string | null => {
      const h = this.hierarchy(controller);
      if (!h) return null;
      let dir = h.dir;
      while (!exists(dir) && dir !== h.mountPoint) dir = posix.dirname(dir);
      return dir;
    };
    const cpuset = nearest('cpuset');
    const list = (name: string, fallback: number[]) => {
      const v = cpuset ? readControl(posix.join(cpuset, name)) : null;
      return v ? parseCpuList(v) : fallback;
    };
    const memory = nearest('memory');
    const blkio = nearest('blkio');
    const blkioWeight =
      blkio !== null &&
      (exists(posix.join(blkio, 'blkio.weight')) ||
        exists(posix.join(blkio, 'blkio.bfq.weight')) ||
        // The root has no weight files; with BFQ present its children get blkio.bfq.weight.
        (blkio === this.hierarchy('blkio')!.mountPoint &&
          exists(posix.join(blkio, 'blkio.bfq.io_service_bytes'))));
    return {
      backend: 'v1',
      controllers,
      cpus: list('cpuset.effective_cpus', onlineCpus()),
      mems: list('cpuset.effective_mems', onlineMems()),
      swapAccounting: memory !== null && exists(posix.join(memory, 'memory.memsw.limit_in_bytes')),
      blkioWeight,
    };
  }

  validate(limits: CgroupLimits): CgroupLimits {
    return checkLimits(limits, this.capabilities());
  }

  apply(limits: CgroupLimits): CgroupLimits {
    const l = this.validate(limits);
    if (!this.exists()) throw notCreated(this.path);
    const f = (controller: string, name: string) => this.file(controller, name)!;
    if (l.memory !== undefined || l.memorySwap !== undefined) {
      const memsw = f('memory', 'memory.memsw.limit_in_bytes');
      const setMemory = () =>
        l.memory !== undefined && writeControl(f('memory', 'memory.limit_in_bytes'), l.memory);
      const setSwap = () => l.memorySwap !== undefined && writeControl(memsw, l.memorySwap);
      // memory may never exceed memory+swap: raise memsw first, lower memory first.
      const currentSwap = readNumber(memsw) ?? Number.POSITIVE_INFINITY;
      if (l.memorySwap !== undefined && (l.memorySwap === -1 || l.memorySwap > currentSwap)) {
        setSwap();
        setMemory();
      } else {
        setMemory();
        setSwap();
      }
    }
    if (l.memoryReservation !== undefined)
      writeControl(f('memory', 'memory.soft_limit_in_bytes'), l.memoryReservation);
    if (l.oomKillDisable) writeControl(f('memory', 'memory.oom_control'), 1);
    if (l.cpuShares !== undefined) writeControl(f('cpu', 'cpu.shares'), l.cpuShares);
    if (l.cpuPeriod !== undefined) writeControl(f('cpu', 'cpu.cfs_period_us'), l.cpuPeriod);
    if (l.cpuQuota !== undefined) writeControl(f('cpu', 'cpu.cfs_quota_us'), l.cpuQuota);
    if (l.cpusetCpus !== undefined) writeControl(f('cpuset', 'cpuset.cpus'), l.cpusetCpus);
    if (l.cpusetMems !== undefined) writeControl(f('cpuset', 'cpuset.mems'), l.cpusetMems);
    if (l.pidsLimit !== undefined)
      writeControl(f('pids', 'pids.max'), l.pidsLimit === -1 ? 'max' : l.pidsLimit);
    if (l.blkioWeight !== undefined) {
      const bfq = f('blkio', 'blkio.bfq.weight');
      writeControl(exists(bfq) ? bfq : f('blkio', 'blkio.weight'), l.blkioWeight);
    }
    return l;
  }

  limits(): CgroupLimits {
    const out: CgroupLimits = {};
    const num = (controller: string, name: string) => {
      const p = this.file(controller, name);
      return p ? readNumber(p) : null;
    };
    const memory = num('memory', 'memory.limit_in_bytes');
    if (memory !== null && memory < UNLIMITED) out.memory = memory;
    const swap = num('memory', 'memory.memsw.limit_in_bytes');
    if (swap !== null && swap < UNLIMITED) out.memorySwap = swap;
    const soft = num('memory', 'memory.soft_limit_in_bytes');
    if (soft !== null && soft < UNLIMITED) out.memoryReservation = soft;
    const shares = num('cpu', 'cpu.shares');
    if (shares !== null && shares !== 1024) out.cpuShares = shares;
    const quota = num('cpu', 'cpu.cfs_quota_us');
    if (quota !== null && quota > 0) {
      out.cpuQuota = quota;
      out.cpuPeriod = num('cpu', 'cpu.cfs_period_us') ?? undefined;
    }
    const cpus = this.file('cpuset', 'cpuset.cpus');
    const mems = this.file('cpuset', 'cpuset.mems');
    if (cpus) {
      const parent = readControl(posix.join(posix.dirname(posix.dirname(cpus)), 'cpuset.cpus'));
      const v = readControl(cpus);
      if (v && v !== parent) out.cpusetCpus = v;
    }
    if (mems) {
      const parent = readControl(posix.join(posix.dirname(posix.dirname(mems)), 'cpuset.mems'));
      const v = readControl(mems);
      if (v && v !== parent) out.cpusetMems = v;
    }
    const pids = num('pids', 'pids.max');
    if (pids !== null) out.pidsLimit = pids;
    const bfq = num('blkio', 'blkio.bfq.weight') ?? num('blkio', 'blkio.weight');
    if (bfq !== null && bfq !== 100) out.blkioWeight = bfq;
    return out;
  }

  oomKills(): number {
    const p = this.file('memory', 'memory.oom_control');
    return (p ? readKeyed(p).get('oom_kill') : undefined) ?? 0;
  }

  stats(): CgroupStats {
    const num = (controller: string, name: string) => {
      const p = this.file(controller, name);
      return (p && readNumber(p)) || 0;
    };
    const keyed = (controller: string, name: string) => {
      const p = this.file(controller, name);
      return p ? readKeyed(p) : new Map<string, number>();
    };
    const mstat = keyed('memory', 'memory.stat');
    const limit = num('memory', 'memory.limit_in_bytes');
    const host = hostMemory();
    const cpuStat = keyed('cpu', 'cpu.stat');
    let user = num('cpuacct', 'cpuacct.usage_user');
    let system = num('cpuacct', 'cpuacct.usage_sys');
    const userFile = this.file('cpuacct', 'cpuacct.usage_user');
    if (userFile === null || !exists(userFile)) {
      // Kernels before 4.6 only have cpuacct.stat, in USER_HZ ticks.
      const ticks = keyed('cpuacct', 'cpuacct.stat');
      user = (ticks.get('user') ?? 0) * (1e9 / USER_HZ);
      system = (ticks.get('system') ?? 0) * (1e9 / USER_HZ);
    }
    const pidsMax = this.file('pids', 'pids.max');
    return {
      read: Date.now(),
      memory: {
        usage: num('memory', 'memory.usage_in_bytes'),
        limit: limit > 0 && limit < host ? limit : host,
        cache: mstat.get('total_cache') ?? mstat.get('cache') ?? 0,
        inactiveFile: mstat.get('total_inactive_file') ?? mstat.get('inactive_file') ?? 0,
        maxUsage: num('memory', 'memory.max_usage_in_bytes'),
        oomKills: this.oomKills(),
      },
      cpu: {
        total: num('cpuacct', 'cpuacct.usage'),
        user,
        system,
        periods: cpuStat.get('nr_periods') ?? 0,
        throttledPeriods: cpuStat.get('nr_throttled') ?? 0,
        throttledTime: cpuStat.get('throttled_time') ?? 0,
        systemUsage: hostCpuTime(),
        onlineCpus: onlineCpus().length,
      },
      pids: { current: num('pids', 'pids.current'), limit: pidsMax ? readNumber(pidsMax) : null },
      blkio: this.blkio(),
    };
  }

  private blkio(): { read: number; write: number } {
    const out = { read: 0, write: 0 };
    const h = this.hierarchy('blkio');
    if (!h) return out;
    for (const name of ['blkio.throttle.io_service_bytes_recursive', 'blkio.io_service_bytes_recursive']) {
      const text = readControl(posix.join(h.dir, name));
      if (text === null) continue;
      // Lines: "8:0 Read 4096", "8:0 Write 0", ..., "Total 4096".
      for (const line of text.split('\n')) {
        const [, op, v] = line.split(' ');
        if (op === 'Read') out.read += Number(v);
        else if (op === 'Write') out.write += Number(v);
      }
      return out;
    }
    return out;
  }

  processes(): number[] {
    const pids = new Set<number>();
    for (const h of this.hierarchies)
      for (const dir of subtreeDeepestFirst(h.dir))
        for (const p of readPids(posix.join(dir, 'cgroup.procs'))) pids.add(p);
    return [...pids].sort((a, b) => a - b);
  }

  private freezerState(): string {
    const h = this.hierarchy('freezer');
    if (!h)
      throw new CgroupError(
        'NOCONTROLLER',
        'freeze and thaw need the v1 freezer controller, which is not mounted',
      );
    return posix.join(h.dir, 'freezer.state');
  }

  async freeze(): Promise<void> {
    const state = this.freezerState();
    writeControl(state, 'FROZEN');
    // A task in an uninterruptible sleep keeps the cgroup FREEZING: asking again retries it.
    await waitFor(
      () => {
        if (readControl(state) === 'FROZEN') return true;
        writeControl(state, 'FROZEN');
        return false;
      },
      this.timeoutMs,
      `freezing ${this.path}`,
      state,
    );
  }

  async thaw(): Promise<void> {
    const state = this.freezerState();
    writeControl(state, 'THAWED');
    await waitFor(() => readControl(state) === 'THAWED', this.timeoutMs, `thawing ${this.path}`, state);
  }

  async killAll(signal: number | string = SIGKILL): Promise<void> {
    const signo = parseSignal(signal);
    if (!this.exists()) return;
    refuseSelf(this.processes(), this.path);
    // Frozen, nothing can fork a new task between listing the PIDs and signalling them.
    const frozen = this.hierarchy('freezer') !== undefined && exists(this.freezerState());
    if (frozen) await this.freeze();
    try {
      signalEach(this.processes(), signo);
    } finally {
      if (frozen) await this.thaw();
    }
    if (signo !== SIGKILL) return;
    await waitFor(
      () => this.processes().length === 0,
      this.timeoutMs,
      `emptying ${this.path} after SIGKILL`,
      this.hierarchies[0].dir,
    );
  }

  async remove(): Promise<void> {
    await waitForLeaving(
      () => this.processes().length === 0,
      () => this.processes(),
      this.timeoutMs,
      this.path,
      this.hierarchies[0].dir,
    );
    for (const h of this.hierarchies) {
      for (const dir of subtreeDeepestFirst(h.dir)) await removeDir(dir, this.timeoutMs);
      for (const dir of h.created.splice(0).reverse()) {
        if (dir === h.dir) continue;
        try {
          await removeDir(dir, 0);
        } catch {
          // A parent we made may now hold another container's cgroup: it stays.
        }
      }
    }
  }
}
