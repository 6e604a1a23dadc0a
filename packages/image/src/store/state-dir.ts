import * as fs from 'node:fs';
import { ImageError } from '../errors.js';

/**
 * Modes of corral's state (the data root, CORRAL_ROOT / --root, and everything in it).
 *
 * Every state folder is 0700: only corral's own user (root) may look in. Nothing needs
 * more. A container never walks a host path to its files: the overlay is mounted by root,
 * and overlayfs reaches its layers with the mounter's credentials, whoever the user in
 * the container is; the init reaches the rootfs and the exec fifo as root before it drops
 * to the container's user (the fifo through an O_PATH fd). So no folder gets 0711: another
 * local user could otherwise run a setuid binary from an unpacked layer or a running
 * container's root (CVE-2021-41091), read private image blobs, or hold a lock file open.
 */
export const STATE_DIR_MODE = 0o700;
/** Lock files and the store's own records. */
export const STATE_FILE_MODE = 0o600;

/**
 * Makes `path` (and missing parents) a private state folder: created 0700, and an existing
 * one (made by an older version with 0755) is set to 0700. A folder another user owns is
 * refused: whoever owns it could have put anything in it.
 */
export function privateDir(path: string): void {
  fs.mkdirSync(path, { recursive: true, mode: STATE_DIR_MODE });
  const st = fs.statSync(path);
  if (!st.isDirectory()) {
    throw new ImageError('CONFLICT', `state folder ${path} is not a folder: move it away and retry`);
  }
  const uid = process.geteuid?.() ?? 0;
  if (st.uid !== uid) {
    throw new ImageError(
      'CONFLICT',
      `state folder ${path} belongs to uid ${st.uid}, not to corral's user (uid ${uid}): another user may have made it to get at corral's data; check it, then remove it or chown it to uid ${uid}`,
    );
  }
  if ((st.mode & 0o7777) !== STATE_DIR_MODE) fs.chmodSync(path, STATE_DIR_MODE);
}

/**
 * True when `path` is missing or already a private folder (a folder, this user's, 0700: what
 * privateDir leaves as it is). A folder that needs fixing was made by an older version, so
 * what it holds needs fixing too; a private one is left alone (nothing is walked on every
 * start).
 */
export function isPrivateOrMissing(path: string): boolean {
  const st = fs.statSync(path, { throwIfNoEntry: false });
  if (!st) return true;
  const uid = process.geteuid?.() ?? 0;
  return st.isDirectory() && st.uid === uid && (st.mode & 0o7777) === STATE_DIR_MODE;
}

/** Sets every plain file directly in `dir` to 0600 (lock files made 0644 by older versions). */
export function privateFiles(dir: string): void {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    if (!e.isFile()) continue;
    const path = `${dir}/${e.name}`;
    try {
      if ((fs.lstatSync(path).mode & 0o7777) !== STATE_FILE_MODE) fs.chmodSync(path, STATE_FILE_MODE);
    } catch (err) {
      // Gone meanwhile (a session mark of a writer that finished).
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
}
