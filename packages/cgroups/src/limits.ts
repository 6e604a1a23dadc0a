import { CgroupLimitError } from './errors.js';
import { formatCpuList, parseCpuList, parseCpus } from './units.js';

/**
 * Resource limits with Docker's meaning and units. Unset (undefined) leaves the kernel default.
 * Byte sizes are numbers of bytes (see parseBytes for `64m`).
 */
export interface CgroupLimits {
  /** `-m`: memory limit in bytes; 0 means none, -1 unlimited. At least 6 MiB. */
  memory?: number;
  /** `--memory-swap`: memory plus swap in bytes, -1 for unlimited swap. Default: twice `memory`. */
  memorySwap?: number;
  /** `--memory-reservation`: soft limit in bytes (v1 soft_limit_in_bytes, v2 memory.low). */
  memoryReservation?: number;
  /** `--cpu-shares`: relative weight, 2..262144 (1024 is the default); v2 gets runc's weight. */
  cpuShares?: number;
  /** `--cpu-period`: CFS period in microseconds, 1000..1000000. */
  cpuPeriod?: number;
  /** `--cpu-quota`: CFS quota in microseconds per period, at least 1000; -1 unlimited. */
  cpuQuota?: number;
  /** `--cpus` as nano-CPUs (0.5 CPU = 500000000): quota over a 100 ms period. */
  nanoCpus?: number;
  /** `--cpus` as a number or string (`0.5`); turned into nanoCpus. */
  cpus?: number | string;
  /** `--cpuset-cpus`: CPUs allowed, a list such as `0-2,4`. */
  cpusetCpus?: string;
  /** `--cpuset-mems`: memory nodes allowed, a list such as `0`. */
  cpusetMems?: string;
  /** `--pids-limit`: most tasks at once; 0 or -1 unlimited. */
  pidsLimit?: number;
  /** `--blkio-weight`: block IO weight, 10..1000 (v2 io.weight gets runc's conversion). */
  blkioWeight?: number;
  /**
   * `--oom-kill-disable`: tasks that pass the memory limit wait for memory instead of being
   * killed (v1 memory.oom_control; cgroup v2 has no such switch).
   */
  oomKillDisable?: boolean;
}

/** What a host (or a cgroup's place in it) can enforce; see Cgroup.capabilities(). */
export interface CgroupCapabilities {
  backend: 'v1' | 'v2';
  /** Controllers usable for the cgroup: memory, cpu, cpuacct, cpuset, pids, blkio (v1) or io (v2), freezer. */
  controllers: string[];
  /** CPUs and memory nodes the cgroup may be given. */
  cpus: number[];
  mems: number[];
  /** Whether memory+swap can be limited (v1 memory.memsw.*, v2 memory.swap.max). */
  swapAccounting: boolean;
  /** Whether a block IO weight file exists (v1 blkio.weight or blkio.bfq.weight, v2 io.weight or io.bfq.weight). */
  blkioWeight: boolean;
}

/** Docker refuses memory limits below 6 MiB: the kernel cannot run a process group in less. */
export const MIN_MEMORY = 6 * 1024 * 1024;
/** The period docker uses for `--cpus`. */
export const NANO_CPU_PERIOD = 100_000;

const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v);

function int(limits: CgroupLimits, field: keyof CgroupLimits): number | undefined {
  const v = limits[field];
  if (v === undefined) return undefined;
  if (!isInt(v))
    throw new CgroupLimitError(field, `${field} must be a whole number, got ${JSON.stringify(v)}`);
  return v;
}

function need(caps: CgroupCapabilities, controller: string, field: string): void {
  if (!caps.controllers.includes(controller))
    throw new CgroupLimitError(
      field,
      `${field} needs the ${controller} cgroup controller, which this host does not offer here (available: ${caps.controllers.join(', ') || 'none'}); drop the limit or enable the controller`,
    );
}

/**
 * Checks limits against what a cgroup can enforce and returns them resolved: `cpus` becomes
 * nanoCpus plus the quota and period that enforce it, `memorySwap` gets docker's default.
 * Throws a CgroupLimitError naming the limit and what to do, before anything is written.
 */
export function checkLimits(limits: CgroupLimits, caps: CgroupCapabilities): CgroupLimits {
  const out: CgroupLimits = {};
  const known = new Set<string>(LIMIT_FIELDS);
  for (const key of Object.keys(limits))
    if (!known.has(key))
      throw new CgroupLimitError(key, `unknown limit ${key} (known: ${LIMIT_FIELDS.join(', ')})`);

  // Memory.
  const memory = int(limits, 'memory');
  const swap = int(limits, 'memorySwap');
  const reservation = int(limits, 'memoryReservation');
  if (memory !== undefined) {
    if (memory < -1)
      throw new CgroupLimitError(
        'memory',
        `invalid memory limit ${memory} (want bytes, 0 for none or -1 for unlimited)`,
      );
    if (memory > 0 && memory < MIN_MEMORY)
      throw new CgroupLimitError('memory', `Minimum memory limit allowed is 6MB (got ${memory} bytes)`);
    if (memory !== 0) need(caps, 'memory', 'memory');
    if (memory !== 0) out.memory = memory;
  }
  if (swap !== undefined && swap !== 0) {
    if (swap < -1)
      throw new CgroupLimitError(
        'memorySwap',
        `invalid memory+swap limit ${swap} (want bytes or -1 for unlimited swap)`,
      );
    if (swap > 0 && !(memory && memory > 0))
      throw new CgroupLimitError(
        'memorySwap',
        'You should always set the memory limit when using the memory+swap limit (set memory as well)',
      );
    if (swap > 0 && memory && swap < memory)
      throw new CgroupLimitError(
        'memorySwap',
        `Minimum memory+swap limit should be larger than the memory limit (memorySwap ${swap} < memory ${memory})`,
      );
    need(caps, 'memory', 'memorySwap');
    if (!caps.swapAccounting)
      throw new CgroupLimitError(
        'memorySwap',
        'this kernel does not account swap in cgroups (no memory.memsw / memory.swap files): drop memorySwap or boot with swap accounting',
      );
    out.memorySwap = swap;
  } else if (memory && memory > 0 && caps.swapAccounting) {
    // docker's default: as much swap as memory.
    out.memorySwap = memory * 2;
  } else if (memory === -1 && caps.swapAccounting) {
    // Unlimited memory with a finite memory+swap is a contradiction the kernel refuses.
    out.memorySwap = -1;
  }
  if (reservation !== undefined && reservation !== 0) {
    if (reservation < 0)
      throw new CgroupLimitError(
        'memoryReservation',
        `invalid memory reservation ${reservation} (want bytes)`,
      );
    if (reservation < MIN_MEMORY)
      throw new CgroupLimitError(
        'memoryReservation',
        `Minimum memory reservation allowed is 6MB (got ${reservation} bytes)`,
      );
    if (memory && memory > 0 && memory < reservation)
      throw new CgroupLimitError(
        'memoryReservation',
        `Minimum memory limit can not be less than memory reservation limit (memory ${memory} < reservation ${reservation})`,
      );
    need(caps, 'memory', 'memoryReservation');
    out.memoryReservation = reservation;
  }

  // CPU time.
  const shares = int(limits, 'cpuShares');
  if (shares !== undefined && shares !== 0) {
    if (shares < 2 || shares > 262144)
      throw new CgroupLimitError(
        'cpuShares',
        `cpu shares must be between 2 and 262144 (got ${shares}; 1024 is the default)`,
      );
    need(caps, 'cpu', 'cpuShares');
    out.cpuShares = shares;
  }
  let nano = int(limits, 'nanoCpus');
  if (limits.cpus !== undefined) {
    const fromCpus = parseCpus(limits.cpus);
    if (nano !== undefined && nano !== fromCpus)
      throw new CgroupLimitError(
        'cpus',
        `cpus (${limits.cpus}) and nanoCpus (${nano}) disagree: set one of them`,
      );
    nano = fromCpus;
  }
  const period = int(limits, 'cpuPeriod');
  const quota = int(limits, 'cpuQuota');
  if (nano !== undefined && nano !== 0) {
    if (nano < 0) throw new CgroupLimitError('cpus', `invalid number of CPUs ${nano / 1e9}`);
    // Resolved limits carry the quota and period that enforce cpus: checking them again is fine.
    const derivedQuota = Math.floor((nano * NANO_CPU_PERIOD) / 1e9);
    if ((period ?? 0) !== 0 && period !== NANO_CPU_PERIOD)
      throw new CgroupLimitError('cpus', 'Conflicting options: cpus and cpuPeriod cannot both be set');
    if ((quota ?? 0) !== 0 && quota !== derivedQuota)
      throw new CgroupLimitError('cpus', 'Conflicting options: cpus and cpuQuota cannot both be set');
    const n = caps.cpus.length;
    if (nano > n * 1e9 || nano < 1e7)
      throw new CgroupLimitError(
        'cpus',
        `Range of CPUs is from 0.01 to ${n}.00, as there are only ${n} CPUs available (got ${nano / 1e9})`,
      );
    need(caps, 'cpu', 'cpus');
    out.nanoCpus = nano;
    out.cpuPeriod = NANO_CPU_PERIOD;
    out.cpuQuota = derivedQuota;
  } else {
    if (period !== undefined && period !== 0) {
      if (period < 1000 || period > 1_000_000)
        throw new CgroupLimitError(
          'cpuPeriod',
          `CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000) (got ${period})`,
        );
      need(caps, 'cpu', 'cpuPeriod');
      out.cpuPeriod = period;
    }
    if (quota !== undefined && quota !== 0) {
      if (quota !== -1 && quota < 1000)
        throw new CgroupLimitError(
          'cpuQuota',
          `CPU cfs quota can not be less than 1ms (i.e. 1000) (got ${quota}; -1 is unlimited)`,
        );
      need(caps, 'cpu', 'cpuQuota');
      out.cpuQuota = quota;
    }
  }

  // cpuset.
  for (const [field, avail, what] of [
    ['cpusetCpus', caps.cpus, 'CPUs'],
    ['cpusetMems', caps.mems, 'memory nodes'],
  ] as const) {
    const v = limits[field];
    if (v === undefined || v === '') continue;
    if (typeof v !== 'string') throw new CgroupLimitError(field, `${field} must be a list such as 0-2,4`);
    const wanted = parseCpuList(v, field);
    const missing = wanted.filter((c) => !avail.includes(c));
    if (missing.length)
      throw new CgroupLimitError(
        field,
        `Requested ${what} are not available - requested ${formatCpuList(missing)}, available: ${formatCpuList(avail)}`,
      );
    need(caps, 'cpuset', field);
    out[field] = formatCpuList(wanted);
  }

  // pids.
  const pids = int(limits, 'pidsLimit');
  if (pids !== undefined) {
    need(caps, 'pids', 'pidsLimit');
    out.pidsLimit = pids <= 0 ? -1 : pids;
  }

  // Block IO.
  const weight = int(limits, 'blkioWeight');
  if (weight !== undefined && weight !== 0) {
    if (weight < 10 || weight > 1000)
      throw new CgroupLimitError('blkioWeight', `Range of blkio weight is from 10 to 1000 (got ${weight})`);
    need(caps, caps.backend === 'v1' ? 'blkio' : 'io', 'blkioWeight');
    if (!caps.blkioWeight)
      throw new CgroupLimitError(
        'blkioWeight',
        'this kernel offers no block IO weight (no blkio.weight / io.weight file; the BFQ scheduler or io.cost is needed): drop the limit',
      );
    out.blkioWeight = weight;
  }

  // The OOM killer.
  const oom = limits.oomKillDisable;
  if (oom !== undefined && typeof oom !== 'boolean')
    throw new CgroupLimitError('oomKillDisable', 'oomKillDisable must be true or false');
  if (oom) {
    if (caps.backend !== 'v1')
      throw new CgroupLimitError(
        'oomKillDisable',
        'disabling the OOM killer needs cgroup v1 (memory.oom_control); cgroup v2 has no such switch',
      );
    need(caps, 'memory', 'oomKillDisable');
    out.oomKillDisable = true;
  }
  return out;
}

export const LIMIT_FIELDS = [
  'memory',
  'memorySwap',
  'memoryReservation',
  'cpuShares',
  'cpuPeriod',
  'cpuQuota',
  'nanoCpus',
  'cpus',
  'cpusetCpus',
  'cpusetMems',
  'pidsLimit',
  'blkioWeight',
  'oomKillDisable',
] as const;

/** linux.resources of the OCI runtime spec (the part corral enforces). */
export interface OciLinuxResources {
  devices?: unknown[];
  memory?: {
    limit?: number;
    reservation?: number;
    swap?: number;
    kernel?: number;
    kernelTCP?: number;
    swappiness?: number;
    disableOOMKiller?: boolean;
    useHierarchy?: boolean;
  };
  cpu?: {
    shares?: number;
    quota?: number;
    period?: number;
    realtimeRuntime?: number;
    realtimePeriod?: number;
    cpus?: string;
    mems?: string;
    idle?: number;
  };
  pids?: { limit?: number };
  blockIO?: {
    weight?: number;
    leafWeight?: number;
    weightDevice?: unknown[];
    throttleReadBpsDevice?: unknown[];
    throttleWriteBpsDevice?: unknown[];
    throttleReadIOPSDevice?: unknown[];
    throttleWriteIOPSDevice?: unknown[];
  };
  hugepageLimits?: unknown[];
  network?: unknown;
  rdma?: unknown;
  unified?: Record<string, string>;
}

const emptyish = (v: unknown) =>
  v === undefined ||
  v === null ||
  (Array.isArray(v) && v.length === 0) ||
  (typeof v === 'object' && v !== null && Object.keys(v).length === 0);

function unsupported(path: string): never {
  throw new CgroupLimitError(
    `linux.resources.${path}`,
    `linux.resources.${path} is not supported by corral's cgroups; remove it from config.json`,
  );
}

/**
 * Limits from an OCI config's linux.resources. A resource corral cannot enforce is an error
 * rather than being dropped; `devices` is left to the runtime (device access is not a limit).
 */
export function limitsFromOci(resources: OciLinuxResources | undefined): CgroupLimits {
  const out: CgroupLimits = {};
  if (!resources) return out;
  const { memory, cpu, pids, blockIO } = resources;
  if (memory) {
    if (memory.limit !== undefined) out.memory = memory.limit;
    if (memory.swap !== undefined) out.memorySwap = memory.swap;
    if (memory.reservation !== undefined) out.memoryReservation = memory.reservation;
    for (const k of ['kernel', 'kernelTCP', 'swappiness'] as const)
      if (memory[k] !== undefined) unsupported(`memory.${k}`);
    if (memory.disableOOMKiller) out.oomKillDisable = true;
  }
  if (cpu) {
    if (cpu.shares !== undefined) out.cpuShares = cpu.shares;
    if (cpu.period !== undefined) out.cpuPeriod = cpu.period;
    if (cpu.quota !== undefined) out.cpuQuota = cpu.quota;
    if (cpu.cpus) out.cpusetCpus = cpu.cpus;
    if (cpu.mems) out.cpusetMems = cpu.mems;
    for (const k of ['realtimeRuntime', 'realtimePeriod', 'idle'] as const)
      if (cpu[k]) unsupported(`cpu.${k}`);
  }
  if (pids?.limit !== undefined) out.pidsLimit = pids.limit;
  if (blockIO) {
    if (blockIO.weight !== undefined) out.blkioWeight = blockIO.weight;
    for (const k of [
      'leafWeight',
      'weightDevice',
      'throttleReadBpsDevice',
      'throttleWriteBpsDevice',
      'throttleReadIOPSDevice',
      'throttleWriteIOPSDevice',
    ] as const)
      if (!emptyish(blockIO[k])) unsupported(`blockIO.${k}`);
  }
  for (const k of ['hugepageLimits', 'network', 'rdma', 'unified'] as const)
    if (!emptyish(resources[k])) unsupported(k);
  return out;
}

/**
 * linux.resources for an OCI config from limits. `cpus`/nanoCpus become quota and period,
 * as docker hands them to runc.
 */
export function limitsToOci(limits: CgroupLimits): OciLinuxResources {
  const l = { ...limits };
  if (l.cpus !== undefined) l.nanoCpus = parseCpus(l.cpus);
  const out: OciLinuxResources = {};
  const memory: NonNullable<OciLinuxResources['memory']> = {};
  if (l.memory !== undefined) memory.limit = l.memory;
  if (l.memorySwap !== undefined) memory.swap = l.memorySwap;
  if (l.memoryReservation !== undefined) memory.reservation = l.memoryReservation;
  if (l.oomKillDisable) memory.disableOOMKiller = true;
  if (Object.keys(memory).length) out.memory = memory;
  const cpu: NonNullable<OciLinuxResources['cpu']> = {};
  if (l.cpuShares !== undefined) cpu.shares = l.cpuShares;
  if (l.nanoCpus) {
    cpu.period = NANO_CPU_PERIOD;
    cpu.quota = Math.floor((l.nanoCpus * NANO_CPU_PERIOD) / 1e9);
  } else {
    if (l.cpuPeriod !== undefined) cpu.period = l.cpuPeriod;
    if (l.cpuQuota !== undefined) cpu.quota = l.cpuQuota;
  }
  if (l.cpusetCpus) cpu.cpus = l.cpusetCpus;
  if (l.cpusetMems) cpu.mems = l.cpusetMems;
  if (Object.keys(cpu).length) out.cpu = cpu;
  if (l.pidsLimit !== undefined) out.pids = { limit: l.pidsLimit };
  if (l.blkioWeight !== undefined) out.blockIO = { weight: l.blkioWeight };
  return out;
}
