import { isErrno, MNT, type MountInfo, umount2 } from '@corral/sys';
import { UnionFsError } from './errors.js';
import type { UnmountOptions } from './types.js';
import { mountAt } from './validate.js';

/**
 * Takes off the union mounted at `target`, which must be one of the backend's own (`ours`
 * tells by filesystem type, `what` names it): any other mount there is left alone. Returns
 * the mount that was taken off.
 */
export function unmountUnion(
  target: string,
  options: UnmountOptions,
  ours: (fsType: string) => boolean,
  what: string,
): MountInfo {
  const m = mountAt(target);
  if (!m) throw new UnionFsError('NOT_MOUNTED', `${target} is not a mount point: nothing to unmount`);
  if (!ours(m.fsType)) {
    throw new UnionFsError(
      'NOT_MOUNTED',
      `${target} holds a ${m.fsType} mount, not ${what}: not unmounting it`,
    );
  }
  try {
    umount2(m.mountPoint, options.detach ? MNT.DETACH : 0);
  } catch (e) {
    if (isErrno(e, 'EBUSY')) {
      throw new UnionFsError(
        'MOUNTPOINT_BUSY',
        `${target} is busy (files open or processes inside): close them, or unmount with { detach: true }`,
        { cause: e },
      );
    }
    throw e;
  }
  return m;
}
