export {
  type ContainerSummary,
  type CreateContainerOptions,
  defaultRoot,
  describeStatus,
  Engine,
  type ExecOptions,
  type Stdio,
  since,
} from './engine.js';
export { EngineError } from './errors.js';
export { type LogEntry, LogWriter, readLogs } from './logs.js';
export { newId, randomName, shortId } from './names.js';
export { type ContainerRecord, RecordStore, type Resources } from './records.js';
export {
  type DockerSeccompProfile,
  loadSeccompProfile,
  resolveSeccompProfile,
  type SeccompTarget,
} from './seccomp.js';
export { DEFAULT_SECCOMP_PROFILE } from './seccomp-default.js';
export { buildSpec, containerEnv, resolveUser } from './spec.js';
