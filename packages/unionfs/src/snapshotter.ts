// containerd's snapshotter model: a snapshot is a writable (prepare) or read-only (view) layer
// over parent layers, described as data (which backend, which folders); one place (mountAll)
// turns that data into a mount. The backend is picked by name, so `fuse` is one more name.
import { lstatSync, mkdirSync, readdirSync, rmdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { type CleanupResult, cleanupStale } from './cleanup.js';
import { UnionFsError } from './errors.js';
import { getUnionFs } from './registry.js';
import type { BackendName, UnionMount } from './types.js';

/** A mount as data: what a union backend needs to assemble one root. */
export interface MountSpec {
  /** The union backend's name (`overlay`, `fuse`, ...). */
  type: BackendName;
  /** Read-only layers, top first. */
  lower: string[];
  /** The writable layer and its work folder; absent for a view. */
  upper?: string;
  work?: string;
}

export interface SnapshotUsage {
  /** Bytes and inodes in the writable layer. */
  size: number;
  inodes: number;
}

/**
 * `dir` made empty: removed and made again. A fresh one (prepare's, a first start's) is
 * empty, and rmdir takes it at once; rmSync's recursive walk costs milliseconds even then.
 */
function emptyDir(dir: string): void {
  try {
    rmdirSync(dir);
  } catch {
    rmSync(dir, { recursive: true, force: true });
  }
  mkdirSync(dir, { mode: 0o755 });
}

/**
 * Snapshots kept in folders of the caller's choosing (`dirOf(key)`): each holds `upper/` and
 * `work/`. prepare and view return mounts as data; `mountAll` mounts them.
 */
export class Snapshotter {
  constructor(
    private readonly dirOf: (key: string) => string,
    readonly backend: BackendName = 'overlay',
  ) {
    getUnionFs(backend); // an unknown backend fails here, by name
  }

  /** A writable snapshot over `parents` (top first): makes its layer, returns its mounts. */
  prepare(key: string, parents: readonly string[]): MountSpec[] {
    const dir = this.dirOf(key);
    mkdirSync(join(dir, 'upper'), { recursive: true, mode: 0o755 });
    mkdirSync(join(dir, 'work'), { recursive: true, mode: 0o755 });
    return this.mounts(key, parents);
  }

  /** A read-only view of a snapshot's layer over its parents (export, commit). */
  view(key: string, parents: readonly string[]): MountSpec[] {
    return [{ type: this.backend, lower: [join(this.dirOf(key), 'upper'), ...parents] }];
  }

  /** The mounts of a prepared snapshot; its work folder is emptied (the kernel wants it so). */
  mounts(key: string, parents: readonly string[]): MountSpec[] {
    const dir = this.dirOf(key);
    emptyDir(join(dir, 'work'));
    return [{ type: this.backend, lower: [...parents], upper: join(dir, 'upper'), work: join(dir, 'work') }];
  }

  /** The writable layer's folder (what commit and diff read). */
  upper(key: string): string {
    return join(this.dirOf(key), 'upper');
  }

  /** Space and inodes the snapshot's own layer takes. */
  usage(key: string): SnapshotUsage {
    const u = { size: 0, inodes: 0 };
    const walk = (dir: string) => {
      for (const name of readdirSync(dir)) {
        const p = join(dir, name);
        const st = lstatSync(p);
        u.inodes++;
        if (st.isDirectory()) walk(p);
        else u.size += st.blocks * 512;
      }
    };
    walk(this.upper(key));
    return u;
  }

  /** Removes the snapshot's layer and work folder. */
  remove(key: string): void {
    const dir = this.dirOf(key);
    rmSync(join(dir, 'upper'), { recursive: true, force: true });
    rmSync(join(dir, 'work'), { recursive: true, force: true });
  }

  /**
   * Takes a root mounted by mountAll off `target`. A mount the backend cannot take off (its
   * server died, a crash left it) is cleared as `cleanup` does; never throws for that.
   */
  async unmount(target: string): Promise<void> {
    await getUnionFs(this.backend)
      .unmount(target, { detach: true })
      .catch(() => cleanupStale(target));
  }

  /**
   * Clears what a crash left mounted at `target`: every union mount stacked there (of any
   * backend, a dead server's too), detached. Refuses any other kind of mount; a target with
   * nothing mounted is no error. For reclaiming after a crash and for a data root's check.
   */
  cleanup(target: string): CleanupResult {
    return cleanupStale(target);
  }
}

/**
 * The one place mounts described as data are mounted: leftovers of a crash at `target` are
 * cleared first. One spec per root (a union is one mount).
 */
export async function mountAll(mounts: readonly MountSpec[], target: string): Promise<UnionMount> {
  if (mounts.length !== 1)
    throw new UnionFsError('BAD_OPTIONS', `one union mount per root, got ${mounts.length}`);
  const [m] = mounts;
  cleanupStale(target);
  return getUnionFs(m.type).mount({ lower: m.lower, upper: m.upper, work: m.work, target });
}
