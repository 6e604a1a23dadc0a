import { type MountInfo, readMountInfo } from '@corral/sys';
import { CgroupError } from './errors.js';
import { type CgroupMode, detectCgroupMode } from './host.js';
import { type CgroupCapabilities, type CgroupLimits, checkLimits } from './limits.js';
import type { Cgroup, OpenCgroupOptions } from './types.js';
import { CgroupV1 } from './v1/index.js';
import { CgroupV2 } from './v2/index.js';

/**
 * A handle on a container's cgroup (nothing is created until create()). The backend is
 * picked by name or by detection: v2 on a unified host, v1 on v1 and hybrid hosts (whose
 * controllers are on v1); a `root` implies v2.
 */
export function openCgroup(opts: OpenCgroupOptions & { mounts?: MountInfo[] }): Cgroup {
  const mounts = opts.mounts ?? readMountInfo();
  let backend = opts.backend ?? 'auto';
  if (!['auto', 'v1', 'v2'].includes(backend))
    throw new CgroupError('EINVAL', `unknown cgroup backend '${backend}': use v1, v2 or auto`);
  if (backend === 'auto')
    backend = opts.root !== undefined || detectCgroupMode(mounts) === 'v2' ? 'v2' : 'v1';
  return backend === 'v2' ? new CgroupV2({ ...opts, mounts }) : new CgroupV1({ ...opts, mounts });
}

/** What a cgroup placed by default (beneath our own) could enforce on this host. */
export function hostCapabilities(mode: CgroupMode = detectCgroupMode()): CgroupCapabilities {
  // A name that does not exist yet: only its parents are read.
  const probe = openCgroup({ path: `corral-probe-${process.pid}`, backend: mode === 'v2' ? 'v2' : 'v1' });
  return probe.capabilities();
}

/**
 * Checks limits before a container starts and returns them resolved (see checkLimits). `host`
 * is a cgroup mode, for this host's default placement, or one cgroup's capabilities().
 * Throws a CgroupLimitError naming the limit and what to do.
 */
export function validateLimits(
  limits: CgroupLimits,
  host: CgroupMode | CgroupCapabilities = detectCgroupMode(),
): CgroupLimits {
  return checkLimits(limits, typeof host === 'string' ? hostCapabilities(host) : host);
}
