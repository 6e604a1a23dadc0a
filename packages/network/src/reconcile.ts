import { readFileSync, rmSync } from 'node:fs';
import { entries, join } from './files.js';
import { pruneSharedChains } from './host.js';
import type { NetworkManager } from './manager.js';

export interface ReconcileReport {
  /** Containers whose namespace and attachments were torn down. */
  containers: string[];
  /**
   * Bridges taken away. A live network keeps its bridge, and a removed network's bridge goes
   * before its record, so this is empty unless a dead container's network was removed
   * meanwhile (its bridge goes with the attachment's DEL).
   */
  bridges: string[];
  /** host-local lease files that named a container corral no longer knows. */
  leases: string[];
  errors: string[];
}

/**
 * Removes what containers that are no longer alive left behind (the engine or a container
 * killed with SIGKILL between ADD and DEL): DEL of each recorded attachment with its
 * recorded list (veth, lease, port and container rules), the namespace unpinned, stray
 * leases, unused shared chains. A network's bridge stays for as long as the network exists
 * (whether a container uses it or not), so a live network is never cut off; only bridges
 * that this manager's own records name are touched, never another engine's.
 * `alive(id)` is the engine's word on whether a container still needs its network.
 */
export async function reconcile(
  mgr: NetworkManager,
  alive: (containerId: string) => boolean,
): Promise<ReconcileReport> {
  const report: ReconcileReport = { containers: [], bridges: [], leases: [], errors: [] };
  for (const id of mgr.knownContainers()) {
    if (alive(id)) continue;
    const orphans = mgr
      .attachments({ containerId: id })
      .filter((a) => !mgr.networks.find(a.networkId))
      .map((a) => a.conflist.plugins[0].bridge as string);
    try {
      await mgr.destroySandbox(id);
      report.containers.push(id);
      report.bridges.push(...orphans);
    } catch (e) {
      report.errors.push(`${id}: ${(e as Error).message}`);
    }
  }
  await mgr.locked(async () => {
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
    await pruneSharedChains();
  });
  return report;
}
