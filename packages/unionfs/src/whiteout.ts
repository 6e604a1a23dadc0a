/**
 * The overlay whiteout format, written once for all of corral: how an overlayfs layer folder
 * marks a deleted entry (a 0/0 character device), a folder that hides the layers below it
 * (trusted.overlay.opaque = "y") and a renamed folder (trusted.overlay.redirect), and how an
 * OCI layer tar carries the same marks (`.wh.NAME`, `.wh..wh..opq`). The FUSE backend, diff,
 * and @corral/image's layer apply and pack all read and write layers through this module.
 * It needs nothing but @corral/sys, so it is also exported alone as `@corral/unionfs/whiteout`.
 */
import { lgetxattr, lsetxattr, makedev, mknod, S_IF } from '@corral/sys';

export const OPAQUE_XATTR = 'trusted.overlay.opaque';
export const REDIRECT_XATTR = 'trusted.overlay.redirect';
/** An OCI tar entry `.wh.NAME` deletes NAME from the layers below. */
export const WHITEOUT_PREFIX = '.wh.';
/** An OCI tar entry of this name makes its folder opaque. */
export const WHITEOUT_OPAQUE = '.wh..wh..opq';

/** overlayfs marks a deleted entry with a character device 0/0 of the same name. */
export function isWhiteout(st: { isCharacterDevice(): boolean; rdev: number }): boolean {
  return st.isCharacterDevice() && st.rdev === 0;
}

/** Makes `path` (which must not exist) a whiteout. */
export function makeWhiteout(path: string): void {
  mknod(path, S_IF.CHR | 0o000, makedev(0, 0));
}

/** A folder that hides the lower folders of the same path. */
export function isOpaque(path: string): boolean {
  return lgetxattr(path, OPAQUE_XATTR)?.toString() === 'y';
}

export function markOpaque(path: string): void {
  lsetxattr(path, OPAQUE_XATTR, Buffer.from('y'));
}

/** trusted.overlay.redirect of a renamed folder, or null. */
export function redirectOf(path: string): string | null {
  return lgetxattr(path, REDIRECT_XATTR)?.toString() ?? null;
}

/**
 * xattrs that belong to overlayfs' bookkeeping, not to the files: never copied into a tar,
 * never taken from one (they would let a layer redirect lookups).
 */
export function isOverlayXattr(name: string): boolean {
  return name.startsWith('trusted.overlay.') || name.startsWith('user.overlay.');
}

/** What the last component of an OCI tar entry's name means for the union. */
export type OciEntry =
  | { kind: 'entry' }
  | { kind: 'opaque' }
  | { kind: 'whiteout'; name: string }
  /** aufs bookkeeping (`.wh..wh.plnk`, `.wh..wh.aufs`): carries nothing for overlayfs. */
  | { kind: 'aufs-meta' };

/** Reads an OCI tar entry's base name. A whiteout's target may be '', '.' or '..': the caller refuses those. */
export function parseOciName(base: string): OciEntry {
  if (!base.startsWith(WHITEOUT_PREFIX)) return { kind: 'entry' };
  if (base === WHITEOUT_OPAQUE) return { kind: 'opaque' };
  if (base.startsWith(`${WHITEOUT_PREFIX}${WHITEOUT_PREFIX}`)) return { kind: 'aufs-meta' };
  return { kind: 'whiteout', name: base.slice(WHITEOUT_PREFIX.length) };
}

/** The OCI tar base name that deletes `name`. */
export function ociWhiteoutName(name: string): string {
  return `${WHITEOUT_PREFIX}${name}`;
}
