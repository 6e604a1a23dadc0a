export {
  type Challenge,
  type Credentials,
  DockerCredentialStore,
  defaultDockerConfigPath,
  parseChallenge,
} from './auth.js';
export {
  type BlobProvider,
  type BlobSink,
  type FetchedManifest,
  type PullOptions,
  type PullResult,
  type PushImage,
  type PushOptions,
  type PushResult,
  RegistryClient,
  type RegistryClientOptions,
  type ResolvedImage,
} from './client.js';
export { DigestMismatchError, isRegistryError, RegistryError, type RegistryErrorCode } from './errors.js';
export { DOCKER_HUB, isLoopbackHost, isValidDigest, registryApiHost } from './hosts.js';
export {
  formatPlatform,
  hostPlatform,
  MANIFEST_ACCEPT,
  normalizePlatform,
  parseImageIndex,
  parseImageManifest,
  parsePlatform,
  selectPlatform,
} from './manifest.js';
export {
  createProgressRenderer,
  formatBytes,
  type ProgressEvent,
  type ProgressRenderer,
  type ProgressRendererOptions,
  type ProgressStatus,
} from './progress.js';
export { pullToStore, pushFromStore } from './store.js';
