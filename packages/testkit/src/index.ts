export { findCgroupDirs } from './cgroups.js';
export { corralBin, mustCorral, runCorral } from './corral.js';
export { type ExecOptions, exec, must, type Result } from './exec.js';
export { type ArchiveImage, imageArchive } from './image-archive.js';
export { mountsUnder, unmountUnder, unmountUnderSync } from './mounts.js';
export { freePort } from './net.js';
export { BUSYBOX, busyboxApplets, busyboxRootfs } from './rootfs.js';
export { Cleanups, removeTree, tempDir } from './temp.js';
export { until } from './until.js';
