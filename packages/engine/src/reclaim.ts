import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { containersIn } from '@corral/network';
import { runtimeStates } from '@corral/runtime';
import { isMountPoint, mountPoints, procStartTime } from '@corral/sys';
import type { EngineContext } from './context.js';
import { discard, keeperAlive, reconcile, reconcileWanted } from './lifecycle.js';
import { networkLeft, reconcileNetworks } from './network.js';
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
    if (!r || !runDied(r)) continue;
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

/** An `--rm` container whose attached run (its owner) has died. */
function runDied(r: ContainerRecord): boolean {
  const owner = r.state.owner;
  return !!r.hostConfig.autoRemove && !!owner && procStartTime(owner.pid) !== owner.startTime;
}

/**
 * Whether reclaimUnkept releases what a container left: not running, its keeper killed (or its
 * launch cut short), and something left (`left`: runtime state or the root's mount) or an
 * `--rm` one that ran.
 */
function unkeptLeft(r: ContainerRecord, left: () => boolean): boolean {
  if (r.state.watcherPid === undefined || r.state.status === 'running' || r.state.restarting) return false;
  if (keeperAlive(r) && !launchAbandoned(r)) return false;
  return (r.state.status === 'exited' && !!r.hostConfig.autoRemove) || left();
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
    const rootfs = ctx.rootfs(id);
    if (!unkeptLeft(r, () => held.has(id) || isMountPoint(rootfs))) continue;
    const ran = r.state.status === 'exited';
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
    const { watcherPid, status } = r.state;
    if (status !== 'running' && status !== 'created') return true;
    if (runDied(r)) return true;
    if (watcherPid !== undefined && !keeperAlive(r)) return true;
  }
  return false;
}

/**
 * Whether Engine.open's reclaim (reclaimAbandoned, reclaimUnkept, reclaimNetworks) or a
 * listing's reconcile would find anything to do, found from files and /proc alone, without
 * the runtime, the network manager or the union code: a listing (`corral ps`, listing.ts)
 * opens the whole Engine only then. It asks the tests those ask (reconcileWanted, runDied,
 * unkeptLeft, networkLeft), so the two cannot drift apart; a damaged record is skipped as they
 * skip it.
 */
export function reclaimWanted(root: string, records: RecordStore): boolean {
  if (abandonedTrash(records.containers).length) return true;
  const held = new Set(runtimeStates(join(root, 'runtime')));
  let mounted: Set<string> | undefined;
  const isMounted = (path: string) => {
    mounted ??= mountPoints();
    return mounted.has(path);
  };
  for (const id of records.ids()) {
    if (records.staleTemps(id).length) return true;
    const r = records.peek(id);
    if (!r) continue;
    if (reconcileWanted(r)) return true;
    // Past reconcile's test, its status is the one the reclaims see.
    const running = r.state.status === 'running' || !!r.state.restarting;
    if (!running && runDied(r)) return true;
    if (unkeptLeft(r, () => held.has(id) || isMounted(join(records.dir(id), 'rootfs')))) return true;
  }
  for (const id of containersIn(`${root}/network`)) {
    const r = records.peek(id);
    if (r !== undefined && networkLeft(r, (x) => x.state.status === 'running')) return true;
  }
  return false;
}
