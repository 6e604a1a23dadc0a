export { type CleanupResult, cleanupStale } from './cleanup.js';
export { main as cliMain, parseOverlayOptions } from './cli.js';
export { type Change, diffUpper, formatChanges } from './diff.js';
export { UnionFsError, type UnionFsErrorCode } from './errors.js';
export { filesystemOf } from './fsinfo.js';
export { type FuseOptions, FuseUnionFs, isFuseUnion } from './fuse/backend.js';
export {
  OVERLAY_FEATURES,
  type OverlayMethod,
  type OverlayOptions,
  OverlayUnionFs,
} from './overlay/index.js';
export { getUnionFs, registerUnionFs, unionFsBackends } from './registry.js';
export { type MountSpec, mountAll, Snapshotter, type SnapshotUsage } from './snapshotter.js';
export type {
  BackendName,
  UnionFs,
  UnionMount,
  UnionMountOptions,
  UnionServerExit,
  UnmountOptions,
} from './types.js';
export {
  isOpaque,
  isOverlayXattr,
  isWhiteout,
  makeWhiteout,
  markOpaque,
  type OciEntry,
  OPAQUE_XATTR,
  ociWhiteoutName,
  parseOciName,
  REDIRECT_XATTR,
  redirectOf,
  WHITEOUT_OPAQUE,
  WHITEOUT_PREFIX,
} from './whiteout.js';
