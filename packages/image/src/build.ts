import * as fs from 'node:fs';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { hostArchitecture } from './archive/common.js';
import { ImageError } from './errors.js';
import { Decompress } from './layer/compress.js';
import { diffLayer } from './layer/pack.js';
import { HashingStream } from './store/hashing.js';
import type { ImageStore } from './store/image-store.js';
import {
  type ContainerConfig,
  type Descriptor,
  type ImageConfig,
  type ImageRecord,
  MediaType,
} from './store/types.js';

/**
 * Stores an uncompressed layer tar gzip-compressed; returns its descriptor and diff ID.
 * `onProgress` hears the tar bytes read so far.
 */
export async function storeLayerTar(
  store: ImageStore,
  tarStream: Readable,
  onProgress?: (bytes: number) => void,
): Promise<{ descriptor: Descriptor; diffId: string }> {
  const h = new HashingStream('sha256');
  const gzip = createGzip();
  const piped = pipeline(tarStream, h, gzip);
  if (onProgress) {
    let n = 0;
    // Beside the pipe already set up: a data listener sees every chunk and changes no flow.
    h.on('data', (chunk: Buffer) => {
      n += chunk.length;
      onProgress(n);
    });
  }
  // Both awaited at once: when the tar fails, the blob write fails too and is not left unhandled.
  // The blob write's error comes first: when it stops (a full disk) the pipe only says aborted.
  const [pipe, written] = await Promise.allSettled([piped, store.content.writeBlob(gzip)]);
  if (written.status === 'rejected') throw written.reason;
  if (pipe.status === 'rejected') throw pipe.reason;
  const blob = written.value;
  return {
    descriptor: { mediaType: MediaType.OciLayerGzip, digest: blob.digest, size: blob.size },
    diffId: h.digest(),
  };
}

export interface ImportOptions {
  /** Names for the new image, e.g. `myimage:1`. */
  names?: string[];
  /** Config values (Cmd, Env, ...) of the new image. */
  config?: ContainerConfig;
  message?: string;
  /** Creation time; defaults to now. */
  created?: Date;
}

/**
 * docker import: a root filesystem tarball (plain, gzip or zstd) becomes a one-layer image.
 * The tarball is stored as given and its diff ID computed by decompressing it.
 */
export async function importRootfs(
  store: ImageStore,
  source: string | Readable,
  options: ImportOptions = {},
): Promise<ImageRecord> {
  return store.session(async () => {
    const input = typeof source === 'string' ? fs.createReadStream(source) : source;
    const blob = await store.content.writeBlob(input);
    try {
      const h = new HashingStream('sha256');
      const decompress = new Decompress();
      await pipeline(store.content.openBlob(blob.digest), decompress, h, async (s: AsyncIterable<Buffer>) => {
        for await (const _ of s) {
          // Only the hash is wanted.
        }
      });
      const compression = decompress.compression ?? 'none';
      const mediaType =
        compression === 'gzip'
          ? MediaType.OciLayerGzip
          : compression === 'zstd'
            ? MediaType.OciLayerZstd
            : MediaType.OciLayer;
      const created = (options.created ?? new Date()).toISOString();
      const config: ImageConfig = {
        created,
        architecture: hostArchitecture(),
        os: 'linux',
        config: options.config ?? {},
        rootfs: { type: 'layers', diff_ids: [h.digest()] },
        history: [
          { created, created_by: 'corral import', comment: options.message ?? 'Imported from tarball' },
        ],
      };
      return await store.createImage(
        config,
        [{ mediaType, digest: blob.digest, size: blob.size }],
        options.names,
      );
    } catch (e) {
      await store.discardBlobs([blob.digest]);
      if (e instanceof ImageError) throw e;
      throw new ImageError('BAD_LAYER', `cannot import the rootfs tarball: ${(e as Error).message}`, {
        cause: e,
      });
    }
  });
}

export interface CommitOptions {
  /** The image the container was created from; none for a container made from scratch. */
  base?: string;
  /** The container's upper folder, in overlay format. */
  upperDir: string;
  names?: string[];
  author?: string;
  message?: string;
  /** The command that made the layer (history created_by), e.g. the container's command. */
  createdBy?: string;
  /** Config values that replace the base image's (docker commit --change). */
  config?: ContainerConfig;
  created?: Date;
  /** Hears the layer's (uncompressed) bytes read so far, for a progress display. */
  onProgress?: (bytes: number) => void;
  /** Paths of the upper folder left out of the layer (`etc/hosts`): the engine's, not the program's. */
  exclude?: readonly string[];
}

/** docker commit: the upper folder becomes a new gzip layer on top of the base image's layers. */
export async function commit(store: ImageStore, options: CommitOptions): Promise<ImageRecord> {
  return store.session(async () => {
    // By its full id also an image removed (rmi -f) while its stopped containers still use it.
    const base = options.base ? (store.record(options.base) ?? store.get(options.base)) : undefined;
    const baseConfig: ImageConfig = base
      ? await store.readConfig(base.configDigest)
      : { architecture: hostArchitecture(), os: 'linux', rootfs: { type: 'layers', diff_ids: [] } };
    const layer = await storeLayerTar(
      store,
      diffLayer(options.upperDir, { exclude: new Set(options.exclude ?? []) }),
      options.onProgress,
    );
    const created = (options.created ?? new Date()).toISOString();
    const config: ImageConfig = {
      ...baseConfig,
      created,
      config: { ...(baseConfig.config ?? {}), ...(options.config ?? {}) },
      rootfs: { type: 'layers', diff_ids: [...baseConfig.rootfs.diff_ids, layer.diffId] },
      history: [
        ...(baseConfig.history ?? []),
        {
          created,
          created_by: options.createdBy ?? '',
          ...(options.author ? { author: options.author } : {}),
          ...(options.message ? { comment: options.message } : {}),
        },
      ],
    };
    if (options.author) config.author = options.author;
    else delete config.author;
    const layers: Descriptor[] = (base?.layers ?? []).map((l) => ({
      mediaType: l.mediaType,
      digest: l.digest,
      size: l.size,
    }));
    try {
      return await store.createImage(config, [...layers, layer.descriptor], options.names);
    } catch (e) {
      await store.discardBlobs([layer.descriptor.digest]);
      throw e;
    }
  });
}
