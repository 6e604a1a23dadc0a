export { type BlobDestination, type BlobExpectation, type BlobInfo, BlobWriter } from './blob-writer.js';
export { canonicalConfigJson, goTime } from './canonical.js';
export { type BlobSource, ContentStore } from './content.js';
export { digestHex, isDigest, sha256, shortId } from './digest.js';
export {
  type HistoryRow,
  type ImageBlobs,
  ImageStore,
  type ImportFromBlobsOptions,
  type PruneOptions,
  type PruneResult,
  parseManifest,
  type RemoveOptions,
  type RemoveResult,
} from './image-store.js';
export {
  familiarName,
  formatReference,
  normalizeReference,
  parseReference,
  type Reference,
  repositoryName,
} from './reference.js';
export * from './types.js';
