import { procStartTime } from '@corral/sys';
import type { EngineContext } from './context.js';
import { discard, reconcile } from './lifecycle.js';
import { reconcileNetworks } from './network.js';

/**
 * Removes the `--rm` containers whose attached run died before its container did (SIGKILLed
 * while it created, mounted or started it, or while it waited): what that run made, its mount,
 * runtime state and record, goes as its own cleanup would have taken it. A container whose
 * program still runs is left alone; it is reclaimed once it has ended.
 */
export async function reclaimAbandoned(ctx: EngineContext): Promise<string[]> {
  const reclaimed: string[] = [];
  for (const id of ctx.records.ids()) {
    const r = ctx.records.read(id);
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
