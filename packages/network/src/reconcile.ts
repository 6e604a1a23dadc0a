import { readFileSync, rmSync } from 'node:fs';
import { entries, join } from './files.js';
import { hostLinks, pruneSharedChains, removeBridge } from './host.js';
import type { NetworkManager } from './manager.js';

export interface ReconcileReport {
  /** Containers whose namespace and attachments were torn down. */
  containers: string[];
  /** Bridges taken away (no container left on them, or their network is gone). */
  bridges: string[];
  /** host-local lease files that named a container corral no longer knows. */
  leases: string[];
  errors: string[];
}

/** corral's bridge names: `corral0` and `crl-` plus 11 hex digits. */
const OURS = /^(corral0|crl-[0-9a-f]{11})$/;

/**
 * Removes what containers that are no longer alive left behind (the engine or a container
 * killed with SIGKILL between ADD and DEL): DEL of each recorded attachment with its
 * recorded list, the namespace unpinned, empty bridges, stray leases, unused shared chains.
 * `alive(id)` is the engine's word on whether a container still needs its network.
 */
export async function reconcile(
  mgr: NetworkManager,
  alive: (containerId: string) => boolean,
): Promise<ReconcileReport> {
  const report: ReconcileReport = { containers: [], bridges: [], leases: [], errors: [] };
  for (const id of mgr.knownContainers()) {
    if (alive(id)) continue;
    try {
      await mgr.destroySandbox(id);
      report.containers.push(id);
    } catch (e) {
      report.errors.push(`${id}: ${(e as Error).message}`);
    }
  }
  await mgr.locked(async () => {
    const used = new Set(mgr.attachments().map((a) => a.networkId));
    const nets = mgr.networks.list();
    const wanted = new Set(nets.filter((n) => used.has(n.id)).map((n) => n.bridge));
    for (const link of await hostLinks()) {
      if (!OURS.test(link) || wanted.has(link)) continue;
      await removeBridge(link, mgr.switches.iptables);
      report.bridges.push(link);
    }
    const leased = new Set(mgr.attachments().map((a) => `${a.network}/${a.containerId}`));
    for (const net of entries(mgr.ipamDir)) {
      for (const f of entries(join(mgr.ipamDir, net))) {
        if (!/^\d+\.\d+\.\d+\.\d+$/.test(f)) continue;
        const file = join(mgr.ipamDir, net, f);
        const owner = readFileSync(file, 'utf8').split(/\r?\n/)[0].trim();
        if (leased.has(`${net}/${owner}`)) continue;
        rmSync(file, { force: true });
        report.leases.push(`${net}/${f}`);
      }
    }
    if (mgr.switches.iptables) await pruneSharedChains();
  });
  return report;
}
