// The engine's public face: what a front-end (the CLI, the daemon) needs and nothing of its
// insides (records, runtime, image store, the watcher are not exported).

// Units, percentages, a process tree and a diff as Docker reads and prints them.
export {
  cpuPercent,
  memoryPercent,
  memoryUsed,
  parseBytes,
  parseCpus,
  parseMemorySwap,
} from '@corral/cgroups';
// Presentation helpers a front-end prints with.
export {
  createProgressRenderer,
  familiarName,
  formatBytes,
  type ProgressEvent,
} from '@corral/image';
// Docker's -p forms, for front-ends that print them.
export { formatPorts, type NetworkRecord, type PortMapping, parsePort } from '@corral/network';
export { formatTree } from '@corral/pidns';
export { formatChanges } from '@corral/unionfs';
// What `docker version` and `docker info` show (the CLI and corrald both).
export {
  API_VERSION,
  DEFAULT_STORAGE_DRIVER,
  type EngineInfo,
  type EngineVersion,
  // Without an Engine: what a front-end imports for its version alone stays small (issue 15).
  engineVersion,
  MIN_API_VERSION,
} from './about.js';
export type {
  ContainerFiles,
  CopyOptions,
  EngineArchive,
  ExtractOptions,
  ExtractResult,
  PathStat,
} from './archive/index.js';
export { copyFromContainer, copyToContainer } from './archive/index.js';
export type { AttachOptions, ExecOptions, ProcessHandle, RunExtras, StdioTarget } from './attach.js';
export { detachedHandle } from './attach.js';
export { applyChanges, splitWords } from './changes.js';
export type { ListOptions } from './container-list.js';
export { defaultRoot, type EngineOptions, type RegistrySettings, type ResidentOptions } from './context.js';
export { type CreateContainerOptions, checkEnv, parseSecurityOpts } from './create.js';
export { keepLogin, registryAuthHeader } from './credentials.js';
export { DEFAULT_DETACH_KEYS, DetachFilter, parseDetachKeys } from './detach-keys.js';
export { type ContainerSummary, Engine } from './engine.js';
export { CorralError, EngineError, type ErrorKind, httpStatus, type Repair, repairAdvice } from './errors.js';
export {
  type EngineEvent,
  type EventFilter,
  parseFilters,
  parseTime,
  type ReadEventsOptions,
} from './events.js';
export {
  type HealthConfig,
  type HealthResult,
  type HealthState,
  parseDuration,
} from './health.js';
export type { ContainerFilters, DiskUsage } from './housekeeping.js';
export type { EngineImages, RegistryAuth } from './images.js';
export type { KeeperPoolStatus } from './keeper-pool.js';
export type { KeptStdin } from './keeper-stdin.js';
export { type Listing, openListing } from './listing.js';
export { entryBytes, type LogEntry, type ReadLogsOptions } from './logs.js';
export {
  checkVolumeName,
  type MountPoint,
  type MountRequest,
  mountPointOf,
  parseMountFlag,
  parseTmpfsFlag,
  parseVolumeSpec,
  parseVolumesFrom,
} from './mount-parse.js';
export type { MountCreateOptions, MountView } from './mounts.js';
export { shortId } from './names.js';
export type { EndpointConfig, NetworkCreateOptions, NetworkSettings } from './network-config.js';
export type {
  EngineNetworks,
  NetworkCreateRequest,
  NetworkDetails,
  NetworkSettingsView,
} from './networks.js';
export { type ContainerRecord, type ContainerStatus, type Resources, statusOf } from './records.js';
// Docker's `run` flag strings (--ulimit, --device, --sysctl, --log-opt, --label, --env-file).
export {
  type DeviceMapping,
  type LogConfig,
  parseDevice,
  parseLabels,
  parseLogOpts,
  parseShmSize,
  parseSysctls,
  parseUlimit,
  type RunSettings,
  readKeyValueFile,
  type Ulimit,
} from './run-options.js';
// Docker's seccomp profile format, for front-ends that take a profile (SecurityOpt).
export {
  type DockerSeccompProfile,
  loadSeccompProfile,
  resolveSeccompProfile,
  type SeccompChoice,
  type SeccompTarget,
} from './seccomp.js';
export { DEFAULT_SECCOMP_PROFILE } from './seccomp-default.js';
export type { StatsSample, StatsStreamOptions } from './stats.js';
export { describeStatus, since } from './status.js';
export type { Finding, SystemCheckResult } from './system-check.js';
export type { Pty } from './terminal.js';
export { type PsTable, parsePs, psTop, treePids } from './top.js';
export type { EngineVolumes, VolumeCreateRequest, VolumeFilters, VolumeView } from './volumes.js';
