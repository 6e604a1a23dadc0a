export { applyDeviceRules, DEFAULT_DEVICE_RULES, type DeviceRule } from './devices.js';
export { type FastPathFlags, fastRunRefusal } from './fast-path.js';
export { type FastRun, type FastRunOptions, runFast } from './fast-run.js';
export { HookError, type HookState, runHooks } from './hooks.js';
export {
  type InitStdio,
  initWaitsForSpec,
  type SpawnInitOptions,
  type StdioPipe,
  spawnInit,
} from './init-process.js';
export { type ParsedMountOptions, parseMountOptions, rootPropagation } from './mount-options.js';
export { secureJoin } from './paths.js';
export {
  type ContainerProcess,
  type ContainerState,
  type CreatedContainer,
  type CreateOptions,
  type ExecOptions,
  type OciStatus,
  Runtime,
  RuntimeError,
  runtimeStates,
} from './runtime.js';
export {
  compileProfile,
  type OciSeccomp,
  type OciSeccompArg,
  type OciSyscall,
  precompiledProfile,
  profileRules,
  SECCOMP_ARCHES,
} from './seccomp.js';
export {
  DEFAULT_DEV_MOUNTS,
  DEFAULT_DEVICES,
  HOOK_NAMES,
  INIT_ANNOTATION,
  type NamespaceType,
  type OciDevice,
  type OciHook,
  type OciHooks,
  type OciLinux,
  type OciMount,
  type OciProcess,
  type OciResources,
  type OciSpec,
  validateSpec,
} from './spec.js';
export { checkSupported, UnsupportedError } from './spec-check.js';
export { OCI_VERSION } from './state.js';
