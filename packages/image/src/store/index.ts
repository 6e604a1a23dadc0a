export { ContentStore, type BlobExpectation, type BlobInfo, type BlobSource } from './content.js';
export { digestHex, isDigest, sha256, shortId } from './digest.js';
export {
  ImageStore,
  parseManifest,
  type HistoryRow,
  type ImageBlobs,
  type ImportFromBlobsOptions,
  type PruneOptions,
  type PruneResult,
  type RemoveOptions,
  type RemoveResult,
} from './image-store.js';
export { familiarName, formatReference, normalizeReference, parseReference, repositoryName, type Reference } from './reference.js';
export * from './types.js';
