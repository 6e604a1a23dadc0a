// A parked keeper's init waits in a cgroup of its own (keeper-pool.ts), beneath the parent
// of the containers' cgroups. Moving a process into a v1 cgroup waits for an RCU grace period
// (5-20 ms here: the kernel's cgroup_threadgroup_rwsem), which a start would otherwise pay on
// its path; parked, the move is paid ahead, off the event loop, and the start renames the
// parking cgroup into the container's (Runtime.create's parkedCgroup). The init is moved only
// once it has loaded, so the container's cgroup is charged nothing of Node's start-up.
//
// A fast keeper has no init to park (keeper-pool.ts): its pool makes it an empty parking
// cgroup, which its run renames into the container's in the same way (runFast's parkedCgroup),
// sparing the start the cgroup's making (a mkdir in every hierarchy).
//
// A parking cgroup holds only its init, with the parent's settings (no limit a container could
// lift, no device it could not reach without it). Its name tells its maker (pid and start
// time): one whose maker is gone (a corrald killed with SIGKILL) is removed when the next
// pool starts beneath the same parent, if it is empty.
import { readdirSync, rmdirSync } from 'node:fs';
import { posix } from 'node:path';
import { type Cgroup, openCgroup } from '@corral/cgroups';
import { initWaitsForSpec } from '@corral/runtime';
import { procStartTime } from '@corral/sys';

const PREFIX = 'corral-pool-';
/** How often a parked init is looked at until it has loaded, and for how long at most. */
const POLL_MS = 10;
const LOAD_TIMEOUT_MS = 30_000;

/** One init's parking cgroup, made once the init has loaded (or never, see cgroup()). */
export class InitParking {
  #taken = false;
  /** The move under way or done; null until it starts. */
  #moving: Promise<Cgroup | null> | null = null;

  /** `parent`: the containers' cgroup parent (undefined: beneath this process's own cgroup). */
  constructor(pid: number, startTime: number | undefined, parent: string | undefined) {
    void this.#whenLoaded(pid, startTime, parent);
  }

  /**
   * The keeper is taken: its init's parking cgroup, with the init in it, or null when it is
   * not parked (still loading: the start moves it itself, as without a pool; or it could not
   * be). A move under way is waited for.
   */
  take(): Promise<Cgroup | null> {
    this.#taken = true;
    return this.#moving ?? Promise.resolve(null);
  }

  /** Removes the parking cgroup if it is still there by its name (its init ended, or moved out). */
  async remove(): Promise<void> {
    this.#taken = true;
    await (await this.#moving)?.remove().catch(() => {});
  }

  async #whenLoaded(pid: number, startTime: number | undefined, parent: string | undefined): Promise<void> {
    const deadline = Date.now() + LOAD_TIMEOUT_MS;
    while (!initWaitsForSpec(pid)) {
      await new Promise((r) => setTimeout(r, POLL_MS).unref());
      if (this.#taken || Date.now() > deadline) return;
    }
    // By start time: a pid reused since is not ours to move.
    if (this.#taken || (startTime !== undefined && procStartTime(pid) !== startTime)) return;
    this.#moving = park(pid, parent);
  }
}

/** Makes a parking cgroup beneath `parent` and moves `pid` into it; null where that cannot be. */
async function park(pid: number, parent: string | undefined): Promise<Cgroup | null> {
  let cgroup: Cgroup;
  try {
    cgroup = openCgroup({ path: parkingName(), parent });
    // A v2 cgroup cannot be renamed: the start would move the init all the same.
    if (cgroup.backend !== 'v1') return null;
    cgroup.create();
  } catch {
    return null; // no permission, no cgroupfs: the start moves the init as without a pool
  }
  try {
    await cgroup.addProcessAsync(pid);
    return cgroup;
  } catch {
    await cgroup.remove().catch(() => {});
    return null;
  }
}

/**
 * An empty parking cgroup beneath `parent` (undefined: this process's own cgroup), for a fast
 * keeper's container; null where none can be made or renamed (v2, no permission).
 */
export function emptyParking(parent: string | undefined): Cgroup | null {
  try {
    const cgroup = openCgroup({ path: parkingName(), parent });
    if (cgroup.backend !== 'v1') return null;
    cgroup.create();
    return cgroup;
  } catch {
    return null;
  }
}

function parkingName(): string {
  const random = Math.random().toString(36).slice(2, 10);
  return `${PREFIX}${process.pid}.${procStartTime(process.pid) ?? 0}-${random}`;
}

/**
 * Removes the empty parking cgroups beneath `parent` (undefined: this process's own cgroup)
 * whose maker is gone: a pool's, killed before it could. rmdir leaves any that holds a process.
 */
export function reclaimParking(parent: string | undefined): void {
  let dirs: string[];
  try {
    dirs = Object.values(openCgroup({ path: `${PREFIX}probe`, parent }).dirs).map((d) => posix.dirname(d));
  } catch {
    return;
  }
  for (const dir of dirs) {
    let names: string[];
    try {
      names = readdirSync(dir).filter((n) => n.startsWith(PREFIX));
    } catch {
      continue; // the parent is not made yet
    }
    for (const name of names) {
      const m = /^corral-pool-(\d+)\.(\d+)-/.exec(name);
      if (!m || procStartTime(Number(m[1])) === Number(m[2])) continue; // its maker lives
      try {
        rmdirSync(posix.join(dir, name));
      } catch {
        // holds a process, or gone meanwhile
      }
    }
  }
}
