export { applyDeviceRules, DEFAULT_DEVICE_RULES, type DeviceRule } from './devices.js';
export { type InitStdio, type StdioPipe, spawnInit } from './init-process.js';
export { type ParsedMountOptions, parseMountOptions, rootPropagation } from './mount-options.js';
export { secureJoin } from './paths.js';
export {
  type ContainerState,
  type ContainerStatus,
  type CreatedContainer,
  type CreateOptions,
  Runtime,
  RuntimeError,
} from './runtime.js';
export {
  compileProfile,
  type OciSeccomp,
  type OciSeccompArg,
  type OciSyscall,
  profileRules,
  SECCOMP_ARCHES,
} from './seccomp.js';
export {
  DEFAULT_DEVICES,
  INIT_ANNOTATION,
  type NamespaceType,
  type OciDevice,
  type OciLinux,
  type OciMount,
  type OciProcess,
  type OciSpec,
  validateSpec,
} from './spec.js';
