export { type BlobDestination, type BlobExpectation, type BlobInfo, BlobWriter } from './blob-writer.js';
export { canonicalConfigJson, goTime } from './canonical.js';
export { type BlobSource, ContentStore } from './content.js';
export { digestHex, isDigest, sha256, shortId } from './digest.js';
export {
  type Finding,
  type FsckResult,
  type HistoryRow,
  type ImageBlobs,
  ImageStore,
  type ImageStoreOptions,
  type ImageUser,
  type ImportFromBlobsOptions,
  type PruneOptions,
  type PruneResult,
  parseManifest,
  type RemoveOptions,
  type RemoveResult,
} from './image-store.js';
export {
  MAX_ARCHIVE_ENTRIES,
  MAX_CONFIG_BYTES,
  MAX_ENTRY_NAME_BYTES,
  MAX_MANIFEST_BYTES,
} from './limits.js';
export { imageRecords, listImages, storeLeftovers } from './listing.js';
export {
  familiarName,
  formatReference,
  normalizeReference,
  parseReference,
  type Reference,
  repositoryName,
} from './reference.js';
export { SpaceGuard } from './space.js';
export {
  isPrivateOrMissing,
  privateDir,
  privateFiles,
  STATE_DIR_MODE,
  STATE_FILE_MODE,
} from './state-dir.js';
export * from './types.js';
