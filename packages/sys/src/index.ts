export * from './at.js';
export * from './calls.js';
export * from './caps.js';
export * from './constants.js';
export { DirFd } from './dir.js';
export {
  CorralError,
  type ErrorKind,
  errnoName,
  errnoValue,
  isErrno,
  type Repair,
  SyscallError,
} from './errors.js';
export { TRAMPOLINE_ARGV0, trampolineFd } from './exec-trampoline.js';
export * from './fuse.js';
export {
  fdPath,
  type InRootOptions,
  MAX_ROOT_FILE,
  openInRoot,
  openRoot,
  readFileInRoot,
  walkInRoot,
} from './in-root.js';
export { joinSessionKeyring } from './keyring.js';
export { mallocTrim } from './memory.js';
export { PERSONALITY, personality } from './personality.js';
export { isMountPoint, type MountInfo, mountPoints, procStartTime, readMountInfo } from './proc.js';
export * from './rawfs.js';
export * from './seccomp.js';
export { parseSignal, signalName } from './signals.js';
export { connectUnix, sendFd, sendFdTo } from './socket.js';
export { cloexecFrom, type SpawnProgramOptions, spawnProgram } from './spawn.js';
export {
  defaultSignalActions,
  type ExecTarget,
  highFd,
  preloadNative,
  setUserRaw,
  type VforkResult,
  vforkExec,
  vforkSupported,
} from './vfork.js';
