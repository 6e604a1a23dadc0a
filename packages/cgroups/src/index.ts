export { CgroupError, CgroupLimitError } from './errors.js';
export {
  type CgroupMode,
  detectCgroupMode,
  type ProcCgroup,
  readProcCgroups,
  type V1Mount,
  v1Mounts,
  v2Mounts,
} from './host.js';
export {
  type CgroupCapabilities,
  type CgroupLimits,
  checkLimits,
  LIMIT_FIELDS,
  limitsFromOci,
  limitsToOci,
  MIN_MEMORY,
  NANO_CPU_PERIOD,
  type OciLinuxResources,
} from './limits.js';
export { hostCapabilities, openCgroup, validateLimits } from './open.js';
export { cpuPercent, memoryPercent, memoryUsed } from './stats.js';
export type { AddProcessOptions, Cgroup, CgroupStats, OpenCgroupOptions } from './types.js';
export {
  blkioWeightToIoWeight,
  formatCpuList,
  parseBytes,
  parseCpuList,
  parseCpus,
  parseMemorySwap,
  sharesToWeight,
  weightToShares,
} from './units.js';
export { CgroupV1 } from './v1/index.js';
export { CgroupV2 } from './v2/index.js';
