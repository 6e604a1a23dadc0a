export * from './calls.js';
export * from './caps.js';
export * from './constants.js';
export { errnoName, errnoValue, isErrno, SyscallError } from './errors.js';
export { isMountPoint, type MountInfo, procStartTime, readMountInfo } from './proc.js';
export * from './seccomp.js';
export { parseSignal, signalName } from './signals.js';
