import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { containersIn } from '@corral/network';
import { runtimeStates } from '@corral/runtime';
import { isMountPoint, procStartTime, readMountInfo } from '@corral/sys';
import type { EngineContext } from './context.js';
import { discard, keeperAlive, reconcile, storageServerGone } from './lifecycle.js';
import { reconcileNetworks } from './network.js';
import type { ContainerRecord, RecordStore } from './records.js';
import { abandonedTrash, sweepTrash } from './trash.js';

/**
 * Removes the `--rm` containers whose attached run died before its container did (SIGKILLed
 * while it created, mounted or started it, or while it waited): what that run made, its mount,
 * runtime state and record, goes as its own cleanup would have taken it. A container whose
 * program still runs is left alone; it is reclaimed once it has ended.
 */
export async function reclaimAbandoned(ctx: EngineContext): Promise<string[]> {
  const reclaimed: string[] = [];
  for (const id of ctx.records.ids()) {
    const r = ctx.records.peek(id); // a damaged one is left to `system check`
    const owner = r?.state.owner;
    if (!r || !owner || !r.hostConfig.autoRemove) continue;
    if (procStartTime(owner.pid) === owner.startTime) continue; // its run is alive
    let now = r;
    try {
      now = reconcile(ctx, r);
    } catch {
      continue; // removed meanwhile
    }
    if (now.state.status === 'running') continue;
    await discard(ctx, now);
    reclaimed.push(id);
  }
  return reclaimed;
}

/**
 * Takes down the networks of containers that no longer run (their watcher or engine was
 * SIGKILLed before it could): namespaces, veths, port rules, leases.
 */
export function reclaimNetworks(ctx: EngineContext): Promise<string[]> {
  return reconcileNetworks(ctx, (r) => {
    try {
      return reconcile(ctx, r).state.status === 'running';
    } catch {
      return false;
    }
  });
}

/**
 * Releases what containers whose keeper was killed left behind (reconcile has recorded how
 * they ended, or they never started): the runtime's state and cgroups, the root's mount; an
 * --rm one that ran is removed.
 */
function launchAbandoned(r: ContainerRecord): boolean {
  const owner = r.state.owner;
  return r.state.status === 'created' && !!owner && procStartTime(owner.pid) !== owner.startTime;
}

export async function reclaimUnkept(ctx: EngineContext): Promise<string[]> {
  // Removed containers' folders that a killed process left in the trash.
  sweepTrash(ctx.records.containers);
  const held = new Set(ctx.runtime.list());
  const reclaimed: string[] = [];
  for (const id of ctx.records.ids()) {
    // A command SIGKILLed between a record's write and its rename left the temp file.
    for (const f of ctx.records.staleTemps(id)) rmSync(f, { force: true });
    let r: ContainerRecord | null;
    try {
      r = ctx.records.read(id);
      if (!r || r.state.watcherPid === undefined) continue;
      r = reconcile(ctx, r);
    } catch {
      continue; // removed meanwhile, or damaged (left to `system check`)
    }
    // A created one: its launch was cut short (its front-end and keeper died half way). A
    // keeper whose front-end died before the start is on its way out (it kills the init and
    // ends; nothing else starts that container), so what the launch made goes now.
    if (r.state.status === 'running' || r.state.restarting) continue;
    if (keeperAlive(r) && !launchAbandoned(r)) continue;
    const rootfs = ctx.rootfs(id);
    const ran = r.state.status === 'exited';
    const left = held.has(id) || isMountPoint(rootfs);
    if (!left && !(ran && r.hostConfig.autoRemove)) continue;
    ctx.releasing.add(id);
    await ctx.runtime.delete(id, { force: true }).catch(() => {});
    ctx.snapshots(r.hostConfig.storageDriver).cleanup(rootfs);
    if (ran && r.hostConfig.autoRemove) await discard(ctx, r);
    reclaimed.push(id);
  }
  return reclaimed;
}

/**
 * Whether a reclaim would change what a listing shows, found by reading the records alone (no
 * runtime, mounts or networks): an `--rm` container goes once its run or keeper has died, so
 * any `--rm` one that is not running or being created under live processes calls for the
 * reclaim. What else reclaim releases (a dead keeper's mount, cgroups, network) shows in no
 * listing and waits for the next engine that opens with a reclaim; a dead keeper's "running"
 * container is shown as exited by the listing itself (reconcile).
 */
export function reclaimDue(ctx: EngineContext): boolean {
  for (const id of ctx.records.ids()) {
    const r = ctx.records.peek(id);
    if (!r?.hostConfig.autoRemove) continue;
    const { owner, watcherPid, status } = r.state;
    if (status !== 'running' && status !== 'created') return true;
    if (owner && procStartTime(owner.pid) !== owner.startTime) return true;
    if (watcherPid !== undefined && !keeperAlive(r)) return true;
  }
  return false;
}

/**
 * Whether Engine.open's reclaim (reclaimAbandoned, reclaimUnkept, reclaimNetworks) or a
 * listing's reconcile would find anything to do, found from files and /proc alone, without
 * the runtime, the network manager or the union code: a listing (`corral ps`, listing.ts)
 * opens the whole Engine only then. Each test below is the condition under which one of those
 * acts; a damaged record is skipped as they skip it.
 */
export function reclaimWanted(root: string, records: RecordStore): boolean {
  if (abandonedTrash(records.containers).length) return true;
  const held = new Set(runtimeStates(join(root, 'runtime')));
  let mounted: Set<string> | undefined;
  const isMounted = (path: string) => {
    mounted ??= new Set(readMountInfo().map((m) => m.mountPoint));
    return mounted.has(path);
  };
  for (const id of records.ids()) {
    if (records.staleTemps(id).length) return true;
    const r = records.peek(id);
    if (!r) continue;
    const { status, restarting, owner, watcherPid } = r.state;
    // reconcile: a storage server or a keeper that died under a running container.
    if (status === 'running' && storageServerGone(r)) return true;
    const kept = keeperAlive(r);
    if ((status === 'running' || restarting) && !kept) return true;
    // reclaimAbandoned: an --rm container whose run died (and that no longer runs).
    const running = status === 'running' || restarting;
    if (r.hostConfig.autoRemove && !running && owner && procStartTime(owner.pid) !== owner.startTime)
      return true;
    // reclaimUnkept: what a keeper that died (or a launch cut short) left: runtime state, the
    // root's mount, an --rm record.
    if (watcherPid === undefined || running || (kept && !launchAbandoned(r))) continue;
    if (status === 'exited' && r.hostConfig.autoRemove) return true;
    if (held.has(id) || isMounted(join(records.dir(id), 'rootfs'))) return true;
  }
  // reclaimNetworks: the network of a container that no longer runs, or no longer exists.
  for (const id of containersIn(`${root}/network`)) {
    const r = records.peek(id);
    if (r === undefined) continue;
    const owner = r?.state.networkOwner;
    if (r && owner && procStartTime(owner.pid) === owner.startTime) continue;
    if (r?.state.status !== 'running') return true;
  }
  return false;
}
