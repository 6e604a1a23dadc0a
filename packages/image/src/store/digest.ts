import { createHash } from 'node:crypto';
import { ImageError } from '../errors.js';

const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;

/** True for a well-formed `sha256:<64 hex>` digest. */
export function isDigest(value: string): boolean {
  return DIGEST_RE.test(value);
}

/** The hex part of a digest; throws INVALID_DIGEST for anything but sha256:<64 lowercase hex>. */
export function digestHex(digest: string): string {
  if (!DIGEST_RE.test(digest)) {
    throw new ImageError(
      'INVALID_DIGEST',
      `invalid digest "${digest}": expected sha256:<64 lowercase hex digits>`,
    );
  }
  return digest.slice(7);
}

export function sha256(data: Uint8Array | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** A short id like docker shows: the first 12 hex digits. */
export function shortId(digest: string): string {
  return digest.replace(/^sha256:/, '').slice(0, 12);
}
