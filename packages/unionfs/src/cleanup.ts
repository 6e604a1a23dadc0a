import { rmSync } from 'node:fs';
import { resolve } from 'node:path';
import { isErrno, MNT, readMountInfo, umount2 } from '@corral/sys';
import { UnionFsError } from './errors.js';
import { emptyLayerFor } from './validate.js';

/** True for the filesystem types a union backend leaves: overlay and FUSE unions. */
function isUnionType(fsType: string): boolean {
  return fsType === 'overlay' || fsType === 'fuse' || fsType.startsWith('fuse.');
}

export interface CleanupResult {
  /** How many union mounts were taken off `target`. */
  unmounted: number;
}

/**
 * Removes what a crash can leave at a union mount point: every union mount stacked at
 * `target` (detached, so open files do not block it). Meant for the engine's `rm` and its
 * start-up. Leaves other kinds of mounts alone and says so. A missing target is not an error.
 */
export function cleanupStale(target: string): CleanupResult {
  const p = resolve(target);
  let unmounted = 0;
  // Bounded: a mount that will not go away must not loop forever.
  for (let round = 0; round < 64; round++) {
    const here = readMountInfo().filter((m) => m.mountPoint === p);
    const top = here.at(-1);
    if (!top) {
      rmSync(emptyLayerFor(p), { recursive: true, force: true });
      return { unmounted };
    }
    if (!isUnionType(top.fsType)) {
      throw new UnionFsError(
        'MOUNTPOINT_BUSY',
        `${p} holds a ${top.fsType} mount from ${top.source}, not a union mount: not touching it; unmount it yourself if it is stale`,
      );
    }
    try {
      umount2(p, MNT.DETACH);
    } catch (e) {
      // Gone in between (another cleaner): look again.
      if (!isErrno(e, 'EINVAL', 'ENOENT')) throw e;
    }
    unmounted++;
  }
  throw new UnionFsError(
    'MOUNTPOINT_BUSY',
    `${p}: union mounts keep reappearing there; look at /proc/self/mountinfo`,
  );
}
