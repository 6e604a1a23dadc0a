import { ImageError, type ImageErrorCode } from '../errors.js';

/**
 * Bounds on what an image may make corral hold in memory, the same on every way in
 * (registry pull, archive load of docker-archive and OCI layout, import): JSON documents
 * are read whole, so each has a cap, checked before a byte of it is read.
 */

/** Manifests and indexes (manifest lists): containerd's and Docker's limit. */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
/** Image configs: containerd's limit. */
export const MAX_CONFIG_BYTES = 32 * 1024 * 1024;
/** An archive's manifest.json (one entry per image, each with its layer list). */
export const MAX_ARCHIVE_MANIFEST_BYTES = MAX_MANIFEST_BYTES;

/** Entries an image archive may hold: each one is remembered by name until the archive ends. */
export const MAX_ARCHIVE_ENTRIES = 100_000;
/** All entry names of an image archive together (remembered until it ends). */
export const MAX_ARCHIVE_NAME_BYTES = 16 * 1024 * 1024;
/** Entries one layer may hold (Linux images with a big node_modules have some 300 000). */
export const MAX_LAYER_ENTRIES = 2_000_000;
/** Longest entry name in an archive or a layer: PATH_MAX, the longest path the kernel takes. */
export const MAX_ENTRY_NAME_BYTES = 4096;

/** A size for messages: 1.5 GiB, 12 MiB, 512 bytes. */
export function formatBytes(n: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} bytes` : `${v >= 10 ? Math.round(v) : Math.round(v * 10) / 10} ${units[i]}`;
}

/** The error for a document over its cap. */
export function tooBig(
  what: string,
  size: number,
  limit: number,
  code: ImageErrorCode = 'BAD_MANIFEST',
): ImageError {
  return new ImageError(
    code,
    `${what} is ${formatBytes(size)}, more than the ${formatBytes(limit)} allowed for it; refused`,
  );
}
