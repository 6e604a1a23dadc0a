export * from './calls.js';
export * from './constants.js';
export { SyscallError, errnoName, errnoValue, isErrno } from './errors.js';
export { parseSignal, signalName } from './signals.js';
export { procStartTime, readMountInfo, isMountPoint, type MountInfo } from './proc.js';
