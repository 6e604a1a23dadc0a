import type { ImageUser } from './holds.js';

/** Media types of the OCI image spec and Docker's schema 2. */
export const MediaType = {
  OciManifest: 'application/vnd.oci.image.manifest.v1+json',
  OciIndex: 'application/vnd.oci.image.index.v1+json',
  OciConfig: 'application/vnd.oci.image.config.v1+json',
  OciLayer: 'application/vnd.oci.image.layer.v1.tar',
  OciLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  OciLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  OciLayerNondistributableGzip: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  DockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  DockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  DockerConfig: 'application/vnd.docker.container.image.v1+json',
  DockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  DockerLayerForeignGzip: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
  DockerLayer: 'application/vnd.docker.image.rootfs.diff.tar',
} as const;

export interface Platform {
  architecture: string;
  os: string;
  variant?: string;
  'os.version'?: string;
  'os.features'?: string[];
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  urls?: string[];
  annotations?: Record<string, string>;
  platform?: Platform;
}

/** An image manifest (OCI or Docker schema 2: same shape). */
export interface Manifest {
  schemaVersion: 2;
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
}

/** An OCI index or a Docker manifest list. */
export interface ImageIndex {
  schemaVersion: 2;
  mediaType?: string;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
}

/** The runtime part of an image config (Docker's `config`). */
export interface ContainerConfig {
  User?: string;
  ExposedPorts?: Record<string, object>;
  Env?: string[];
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  Volumes?: Record<string, object>;
  WorkingDir?: string;
  Labels?: Record<string, string>;
  StopSignal?: string;
  [key: string]: unknown;
}

export interface HistoryEntry {
  created?: string;
  created_by?: string;
  author?: string;
  comment?: string;
  empty_layer?: boolean;
}

/** The image config blob (OCI image config / Docker image JSON). */
export interface ImageConfig {
  created?: string;
  author?: string;
  architecture: string;
  os: string;
  variant?: string;
  config?: ContainerConfig;
  rootfs: { type: 'layers'; diff_ids: string[] };
  history?: HistoryEntry[];
  [key: string]: unknown;
}

/** One layer of a stored image: its blob (as distributed) and its uncompressed diff ID. */
export interface LayerRecord {
  /** Digest of the layer blob in the content store. */
  digest: string;
  mediaType: string;
  size: number;
  /** sha256 of the uncompressed tar (config.rootfs.diff_ids). */
  diffId: string;
}

/** What the store keeps per image (one per manifest). */
export interface ImageRecord {
  /** Docker's image ID: the config digest. */
  id: string;
  manifestDigest: string;
  /** The index (manifest list) this manifest was pulled through, when it had one. */
  indexDigest?: string;
  manifestMediaType: string;
  manifestSize: number;
  configDigest: string;
  configMediaType: string;
  configSize: number;
  layers: LayerRecord[];
  /** `created` of the config, if any. */
  created?: string;
  /** When this store registered the image (ISO time). */
  loadedAt: string;
  /**
   * When it was removed (`rmi -f`) while stopped containers still used it: hidden from names,
   * lists and lookups, kept (with its layers) until the last of them is removed.
   */
  removed?: string;
}

/** A row of `images`. */
export interface ImageSummary {
  id: string;
  manifestDigest: string;
  /** Short names as docker shows them, e.g. `busybox:latest`. */
  repoTags: string[];
  created?: string;
  /** Sum of the uncompressed layer tar sizes. */
  size: number;
}

export const isLayerMediaType = (mt: string): boolean =>
  mt.startsWith('application/vnd.oci.image.layer.') || mt.startsWith('application/vnd.docker.image.rootfs.');

// --- what the ImageStore takes and gives ---

/** The manifest to register: by digest (already a blob) or as bytes (stored as a blob). */
export interface ImportFromBlobsOptions {
  manifestDigest?: string;
  manifest?: Buffer;
  /** Names to point at the image, e.g. `busybox` or `localhost:5000/app:1`. */
  names?: string[];
  /** The index (manifest list) the manifest was picked from: `NAME@<index digest>` finds it too. */
  indexDigest?: string;
}

/** The blobs a pusher sends for one image, all present in `store.content`. */
export interface ImageBlobs {
  record: ImageRecord;
  manifest: Descriptor;
  config: Descriptor;
  layers: Descriptor[];
}

export interface RemoveOptions {
  force?: boolean;
  /** The engine's answer to "does a container use this image?" (a stopped one). */
  isInUse?: (imageId: string) => boolean;
  /** The containers that use an image (overrides the store's `users`). */
  users?: (imageId: string) => ImageUser[];
}

export interface RemoveResult {
  untagged: string[];
  deleted: string[];
}

export interface PruneOptions {
  /** Remove every image without a container, not only dangling (untagged) ones. */
  all?: boolean;
  /** Only images created before this time (ms since the epoch; Docker's `until` filter). */
  until?: number;
  isInUse?: (imageId: string) => boolean;
  users?: (imageId: string) => ImageUser[];
}

export interface PruneResult {
  deletedImages: string[];
  deletedLayers: string[];
  deletedBlobs: string[];
  reclaimedBytes: number;
}
