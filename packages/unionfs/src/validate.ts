import { lstatSync, type Stats, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { readMountInfo } from '@corral/sys';
import { UnionFsError } from './errors.js';
import { filesystemOf, upperRefusal } from './fsinfo.js';
import type { UnionMountOptions } from './types.js';

/** Mount options with absolute paths, checked for the mistakes every backend must refuse. */
export interface CheckedOptions {
  lower: string[];
  upper: string | null;
  work: string | null;
  target: string;
}

function statOrNull(path: string): Stats | null {
  try {
    return statSync(path);
  } catch {
    return null;
  }
}

/** The mount at exactly `path`, the top one when several are stacked there. */
export function mountAt(path: string) {
  const p = resolve(path);
  const found = readMountInfo().filter((m) => m.mountPoint === p);
  return found.at(-1) ?? null;
}

/**
 * Checks the options before anything is mounted so that bad input gets a message that names
 * the folder and the fix, rather than the kernel's bare EINVAL.
 */
export function checkOptions(options: UnionMountOptions, backend: string): CheckedOptions {
  if (!options || !Array.isArray(options.lower) || options.lower.length === 0) {
    throw new UnionFsError(
      'BAD_OPTIONS',
      `${backend}: give at least one lower layer (lower: [dir, ...], top layer first)`,
    );
  }
  if (typeof options.target !== 'string' || options.target === '') {
    throw new UnionFsError('BAD_OPTIONS', `${backend}: give the mount point (target)`);
  }
  if ((options.upper == null) !== (options.work == null)) {
    throw new UnionFsError(
      'BAD_OPTIONS',
      `${backend}: upper and work go together: give both for a writable mount, neither for a read-only one`,
    );
  }
  const lower = options.lower.map((l) => resolve(l));
  for (const l of lower) {
    const st = statOrNull(l);
    if (!st)
      throw new UnionFsError('LOWER_MISSING', `lower layer ${l} does not exist: create it or fix the path`);
    if (!st.isDirectory()) throw new UnionFsError('LOWER_MISSING', `lower layer ${l} is not a folder`);
  }
  const target = resolve(options.target);
  const tst = statOrNull(target);
  if (!tst?.isDirectory()) {
    throw new UnionFsError(
      'MOUNTPOINT_MISSING',
      `mount point ${target} is not an existing folder: create it first`,
    );
  }
  const busy = mountAt(target);
  if (busy) {
    throw new UnionFsError(
      'MOUNTPOINT_BUSY',
      `mount point ${target} is already in use (${busy.fsType} from ${busy.source}): unmount it first, or call cleanupStale('${target}') if it is left over`,
    );
  }
  let upper: string | null = null;
  let work: string | null = null;
  if (options.upper != null && options.work != null) {
    upper = resolve(options.upper);
    work = resolve(options.work);
    for (const [what, dir] of [
      ['upper', upper],
      ['work', work],
    ] as const) {
      const st = statOrNull(dir);
      if (!st)
        throw new UnionFsError('UPPER_MISSING', `${what} folder ${dir} does not exist: create it first`);
      if (!st.isDirectory()) throw new UnionFsError('UPPER_MISSING', `${what} folder ${dir} is not a folder`);
    }
    const fs = filesystemOf(upper);
    const why = upperRefusal(fs.name);
    if (why) {
      throw new UnionFsError(
        'UPPER_UNSUPPORTED',
        `upper folder ${upper} is on ${fs.name}, which overlayfs cannot use as an upper layer (${why}): put upper and work on ext4, xfs, btrfs or tmpfs`,
      );
    }
    if (lstatSync(upper).dev !== lstatSync(work).dev) {
      throw new UnionFsError(
        'BAD_OPTIONS',
        `work folder ${work} must be on the same filesystem as upper ${upper}`,
      );
    }
    if (upper === work)
      throw new UnionFsError('BAD_OPTIONS', `upper and work must be two different folders (${upper})`);
  }
  return { lower, upper, work, target };
}

/** The empty bottom layer a read-only mount of one layer needs, kept beside its mount point. */
export function emptyLayerFor(target: string): string {
  const t = resolve(target);
  return join(dirname(t), `.${basename(t)}.corral-empty`);
}
