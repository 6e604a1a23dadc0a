import { appendFileSync, mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync } from 'node:fs';
import { posix } from 'node:path';
import { type MountInfo, parseSignal, readMountInfo } from '@corral/sys';
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
import { cgroupDir, hostCpuTime, hostMemory, onlineCpus, onlineMems, readProcCgroups } from '../host.js';
import { type CgroupCapabilities, type CgroupLimits, checkLimits } from '../limits.js';
import type { AddProcessOptions, Cgroup, CgroupStats, OpenCgroupOptions } from '../types.js';
import { blkioWeightToIoWeight, parseCpuList, sharesToWeight, weightToShares } from '../units.js';

const SIGKILL = 9;

/** The cgroup2 mount to use by default: /sys/fs/cgroup on a unified host, the v2 mount of a hybrid one. */
function defaultV2Mount(mounts: MountInfo[]): MountInfo {
  const v2 = mounts.filter((m) => m.fsType === 'cgroup2');
  const m =
    v2.find((x) => x.mountPoint === '/sys/fs/cgroup') ??
    v2.find((x) => x.mountPoint.startsWith('/sys/fs/cgroup/')) ??
    v2[0];
  if (!m)
    throw new CgroupError('NOCGROUPFS', 'no cgroup2 filesystem is mounted: use the v1 backend, or pass root');
  return m;
}

/**
 * cgroup v2: one unified tree. With a `root` that is not a cgroup2 mount, the backend works on
 * a scratch tree of plain files laid out like one (tests, dry runs): there nothing is enforced.
 */
export class CgroupV2 implements Cgroup {
  readonly backend = 'v2' as const;
  readonly path: string;
  readonly paths: Readonly<Record<string, string>>;
  readonly dirs: Readonly<Record<string, string>>;
  /** True when root is a plain folder rather than a cgroup2 mount. */
  readonly scratch: boolean;
  readonly root: string;
  private readonly own: string;
  private readonly cgroup: string;
  private readonly dir: string;
  private readonly timeoutMs: number;
  private created: string[] = [];

  constructor(opts: OpenCgroupOptions & { mounts?: MountInfo[] }) {
    const mounts = opts.mounts ?? readMountInfo();
    this.path = opts.path;
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    let mountRoot = '/';
    if (opts.root === undefined) {
      const m = defaultV2Mount(mounts);
      this.root = m.mountPoint;
      mountRoot = m.root;
      this.scratch = false;
    } else {
      this.root = posix.resolve(opts.root);
      const m = mounts.find((x) => x.fsType === 'cgroup2' && x.mountPoint === this.root);
      this.scratch = m === undefined;
      if (m) mountRoot = m.root;
    }
    if (!exists(this.root))
      throw new CgroupError('ENOENT', `cgroup2 root ${this.root} does not exist`, this.root);
    // In a scratch tree the root stands for our own cgroup.
    this.own = this.scratch
      ? '/'
      : ((opts.own ?? readProcCgroups('self')).find((c) => c.id === 0 && c.controllers.length === 0)?.path ??
        '/');
    this.cgroup = resolveCgroupPath(this.own, opts.path, opts.parent);
    const dir = cgroupDir(this.root, mountRoot, this.cgroup);
    if (dir === null)
      throw new CgroupError(
        'OUTSIDE',
        `cgroup ${this.cgroup} is not visible in the cgroup2 mount at ${this.root} (it shows ${mountRoot} only)`,
      );
    this.dir = dir;
    this.paths = { unified: this.cgroup };
    this.dirs = { unified: this.dir };
  }

  private f(name: string): string {
    return posix.join(this.dir, name);
  }

  exists(): boolean {
    return exists(this.dir);
  }

  /** The nearest existing directory strictly above the cgroup: its subtree_control decides our controllers. */
  private nearestAncestor(): string {
    let dir = posix.dirname(this.dir);
    while (!exists(dir) && dir !== this.root) dir = posix.dirname(dir);
    return dir;
  }

  create(): void {
    if (this.exists())
      throw new CgroupError(
        'EXISTS',
        `cgroup ${this.dir} exists already: another container may use this name, or an earlier one was not removed`,
        this.dir,
      );
    const enable = (readControl(posix.join(this.nearestAncestor(), 'cgroup.subtree_control')) ?? '')
      .split(/\s+/)
      .filter(Boolean);
    try {
      for (const dir of dirsBetween(this.root, this.dir)) {
        if (exists(dir)) continue;
        mkdirSync(dir);
        this.created.push(dir);
        // Parents we make pass every controller they got on to their children.
        if (dir !== this.dir && enable.length)
          writeControl(posix.join(dir, 'cgroup.subtree_control'), enable.map((c) => `+${c}`).join(' '));
      }
    } catch (e) {
      for (const dir of this.created.splice(0).reverse()) {
        try {
          if (this.scratch) rmSync(dir, { recursive: true, force: true });
          else rmdirSync(dir);
        } catch {
          // Best effort while reporting the first error.
        }
      }
      if (e instanceof CgroupError) throw e;
      throw new CgroupError(
        (e as NodeJS.ErrnoException).code ?? 'EIO',
        `creating cgroup ${this.dir} failed: ${(e as Error).message}`,
        this.dir,
        { cause: e },
      );
    }
  }

  addProcess(pid: number | 'self', options: AddProcessOptions = {}): void {
    this.checkAdd(pid, options);
    // The kernel adds a written PID to cgroup.procs; a scratch tree's plain file needs appending.
    if (this.scratch) appendFileSync(this.f('cgroup.procs'), `${pid === 'self' ? process.pid : pid}\n`);
    else writeControl(this.f('cgroup.procs'), pid === 'self' ? 0 : pid);
  }

  async addProcessAsync(pid: number, options: AddProcessOptions = {}): Promise<void> {
    this.checkAdd(pid, options);
    if (this.scratch) appendFileSync(this.f('cgroup.procs'), `${pid}\n`);
    else await writeControlAsync(this.f('cgroup.procs'), pid);
  }

  private checkAdd(pid: number | 'self', { from }: AddProcessOptions): void {
    if (pid !== 'self') checkPid(pid);
    if (!this.exists()) throw notCreated(this.path);
    if (!this.scratch) {
      const at = readProcCgroups(pid).find((c) => c.id === 0 && c.controllers.length === 0);
      if (at) checkBeneath(pid, placeOf(at.path, from?.paths.unified), this.cgroup, 'cgroup ', this.dir);
    }
  }

  renameTo(to: Cgroup): void {
    throw new CgroupError(
      'ENOTSUP',
      `cgroup ${this.path} cannot be renamed to ${to.path}: the kernel refuses to rename a v2 cgroup (EPERM); create the new one and move the processes to it (addProcess with from)`,
      this.dir,
    );
  }

  capabilities(): CgroupCapabilities {
    const ancestor = this.nearestAncestor();
    const controllers = (readControl(posix.join(ancestor, 'cgroup.subtree_control')) ?? '')
      .split(/\s+/)
      .filter(Boolean);
    const nearest = this.exists() ? this.dir : ancestor;
    // Without the cpuset controller here the nearest ancestor that has it tells.
    const list = (name: string, fallback: number[]) => {
      for (let dir = nearest; ; dir = posix.dirname(dir)) {
        const v = readControl(posix.join(dir, name));
        if (v) return parseCpuList(v);
        if (dir === this.root || dir === '/') return fallback;
      }
    };
    let cmdline = '';
    try {
      cmdline = readFileSync('/proc/cmdline', 'utf8');
    } catch {
      // No /proc/cmdline: assume the kernel's defaults.
    }
    // Swap is accounted unless the kernel was booted without it; the root has no memory.swap.max to show it.
    const swapOff = /(^|\s)(swapaccount=0|cgroup\.memory=\S*noswap)/.test(cmdline);
    const swapAccounting =
      controllers.includes('memory') &&
      !swapOff &&
      (exists(posix.join(nearest, 'memory.swap.max')) || nearest === this.root || !this.exists());
    const blkioWeight =
      controllers.includes('io') &&
      (!this.exists() || exists(this.f('io.weight')) || exists(this.f('io.bfq.weight')) || this.scratch);
    return {
      backend: 'v2',
      controllers,
      cpus: list('cpuset.cpus.effective', onlineCpus()),
      mems: list('cpuset.mems.effective', onlineMems()),
      swapAccounting,
      blkioWeight,
    };
  }

  validate(limits: CgroupLimits): CgroupLimits {
    return checkLimits(limits, this.capabilities());
  }

  apply(limits: CgroupLimits): CgroupLimits {
    const l = this.validate(limits);
    if (!this.exists()) throw notCreated(this.path);
    const max = (v: number) => (v === -1 ? 'max' : v);
    if (l.memory !== undefined) writeControl(this.f('memory.max'), max(l.memory));
    if (l.memorySwap !== undefined) {
      // v2 limits swap alone: memory+swap minus memory (runc's conversion).
      const swap =
        l.memorySwap === -1 || l.memory === undefined || l.memory === -1 ? -1 : l.memorySwap - l.memory;
      writeControl(this.f('memory.swap.max'), max(swap));
    }
    if (l.memoryReservation !== undefined) writeControl(this.f('memory.low'), l.memoryReservation);
    if (l.cpuShares !== undefined) writeControl(this.f('cpu.weight'), sharesToWeight(l.cpuShares));
    if (l.cpuQuota !== undefined || l.cpuPeriod !== undefined) {
      // cpu.max holds "$QUOTA $PERIOD": keep the half that is not being set.
      const [curQuota, curPeriod] = (readControl(this.f('cpu.max')) ?? 'max 100000').split(/\s+/);
      const quota = l.cpuQuota === undefined ? curQuota : max(l.cpuQuota);
      const period = l.cpuPeriod ?? curPeriod ?? 100000;
      writeControl(this.f('cpu.max'), `${quota} ${period}`);
    }
    if (l.cpusetCpus !== undefined) writeControl(this.f('cpuset.cpus'), l.cpusetCpus);
    if (l.cpusetMems !== undefined) writeControl(this.f('cpuset.mems'), l.cpusetMems);
    if (l.pidsLimit !== undefined) writeControl(this.f('pids.max'), max(l.pidsLimit));
    if (l.blkioWeight !== undefined) {
      // BFQ takes the v1 range as is; io.weight wants runc's conversion to 1..10000.
      if (exists(this.f('io.bfq.weight'))) writeControl(this.f('io.bfq.weight'), l.blkioWeight);
      else writeControl(this.f('io.weight'), `default ${blkioWeightToIoWeight(l.blkioWeight)}`);
    }
    return l;
  }

  limits(): CgroupLimits {
    const out: CgroupLimits = {};
    const memory = readNumber(this.f('memory.max'));
    if (memory !== null) out.memory = memory;
    const swap = readNumber(this.f('memory.swap.max'));
    if (swap !== null && memory !== null) out.memorySwap = memory + swap;
    const low = readNumber(this.f('memory.low'));
    if (low) out.memoryReservation = low;
    const weight = readNumber(this.f('cpu.weight'));
    if (weight !== null && weight !== 100) out.cpuShares = weightToShares(weight);
    const cpuMax = readControl(this.f('cpu.max'));
    if (cpuMax) {
      const [quota, period] = cpuMax.split(/\s+/);
      if (quota !== 'max') {
        out.cpuQuota = Number(quota);
        out.cpuPeriod = Number(period);
      }
    }
    const cpus = readControl(this.f('cpuset.cpus'));
    if (cpus) out.cpusetCpus = cpus;
    const mems = readControl(this.f('cpuset.mems'));
    if (mems) out.cpusetMems = mems;
    const pids = readNumber(this.f('pids.max'));
    if (pids !== null) out.pidsLimit = pids;
    const bfq = readNumber(this.f('io.bfq.weight'));
    if (bfq !== null && bfq !== 100) out.blkioWeight = bfq;
    return out;
  }

  oomKills(): number {
    return readKeyed(this.f('memory.events')).get('oom_kill') ?? 0;
  }

  stats(): CgroupStats {
    const num = (name: string) => readNumber(this.f(name)) ?? 0;
    const mstat = readKeyed(this.f('memory.stat'));
    const cpu = readKeyed(this.f('cpu.stat'));
    const host = hostMemory();
    const limit = readNumber(this.f('memory.max'));
    const blkio = { read: 0, write: 0 };
    // io.stat lines: "8:16 rbytes=1459200 wbytes=314773504 rios=192 wios=353 dbytes=0 dios=0".
    for (const line of (readControl(this.f('io.stat')) ?? '').split('\n')) {
      for (const field of line.split(' ').slice(1)) {
        const [k, v] = field.split('=');
        if (k === 'rbytes') blkio.read += Number(v);
        else if (k === 'wbytes') blkio.write += Number(v);
      }
    }
    return {
      read: Date.now(),
      memory: {
        usage: num('memory.current'),
        limit: limit !== null && limit < host ? limit : host,
        cache: mstat.get('file') ?? 0,
        inactiveFile: mstat.get('inactive_file') ?? 0,
        maxUsage: num('memory.peak'),
        oomKills: this.oomKills(),
      },
      cpu: {
        total: (cpu.get('usage_usec') ?? 0) * 1000,
        user: (cpu.get('user_usec') ?? 0) * 1000,
        system: (cpu.get('system_usec') ?? 0) * 1000,
        periods: cpu.get('nr_periods') ?? 0,
        throttledPeriods: cpu.get('nr_throttled') ?? 0,
        throttledTime: (cpu.get('throttled_usec') ?? 0) * 1000,
        systemUsage: hostCpuTime(),
        onlineCpus: onlineCpus().length,
      },
      pids: { current: num('pids.current'), limit: readNumber(this.f('pids.max')) },
      blkio,
    };
  }

  processes(): number[] {
    const pids = new Set<number>();
    for (const dir of subtreeDeepestFirst(this.dir))
      for (const p of readPids(posix.join(dir, 'cgroup.procs'))) pids.add(p);
    return [...pids].sort((a, b) => a - b);
  }

  /** cgroup.events says `populated 0` once no process is left in the cgroup or beneath it. */
  private empty(): boolean {
    if (readKeyed(this.f('cgroup.events')).get('populated') === 1) return false;
    return this.processes().length === 0;
  }

  private frozen(): boolean {
    return readKeyed(this.f('cgroup.events')).get('frozen') === 1;
  }

  async freeze(): Promise<void> {
    writeControl(this.f('cgroup.freeze'), 1);
    await waitFor(() => this.frozen(), this.timeoutMs, `freezing ${this.path}`, this.dir);
  }

  async thaw(): Promise<void> {
    writeControl(this.f('cgroup.freeze'), 0);
    await waitFor(() => !this.frozen(), this.timeoutMs, `thawing ${this.path}`, this.dir);
  }

  async killAll(signal: number | string = SIGKILL): Promise<void> {
    const signo = parseSignal(signal);
    if (!this.exists()) return;
    refuseSelf(this.processes(), this.path);
    if (signo === SIGKILL && exists(this.f('cgroup.kill'))) {
      // Linux 5.14+: the kernel kills the whole subtree at once, forks included.
      writeControl(this.f('cgroup.kill'), 1);
    } else {
      await this.freeze();
      try {
        signalEach(this.processes(), signo);
      } finally {
        await this.thaw();
      }
      if (signo !== SIGKILL) return;
    }
    await waitFor(() => this.empty(), this.timeoutMs, `emptying ${this.path} after SIGKILL`, this.dir);
  }

  async remove(): Promise<void> {
    if (!this.exists()) return;
    await waitForLeaving(
      () => this.empty(),
      () => this.processes(),
      this.timeoutMs,
      this.path,
      this.dir,
    );
    // A scratch tree holds plain files, which rmdir would refuse.
    const clearFiles = this.scratch
      ? (dir: string) => {
          for (const e of readdirSync(dir, { withFileTypes: true }))
            if (!e.isDirectory()) rmSync(posix.join(dir, e.name));
        }
      : undefined;
    for (const dir of subtreeDeepestFirst(this.dir)) await removeDir(dir, this.timeoutMs, clearFiles);
    for (const dir of this.created.splice(0).reverse()) {
      if (dir === this.dir) continue;
      try {
        await removeDir(
          dir,
          0,
          clearFiles &&
            ((d) => readdirSync(d, { withFileTypes: true }).some((e) => e.isDirectory()) || clearFiles(d)),
        );
      } catch {
        // A parent we made may now hold another container's cgroup: it stays.
      }
    }
  }
}
