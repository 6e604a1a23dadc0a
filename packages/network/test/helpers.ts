import { readFileSync, readlinkSync } from 'node:fs';
import { basename, join } from 'node:path';
import { BUSYBOX, type Cleanups, exec, must, type Result } from '@corral/testkit';
import { NetworkManager, reconcile, ruleset } from '../src/index.js';
import { overlaps, parseCidr, parseRoute } from '../src/subnet.js';

export { BUSYBOX };

/** Tests change nothing of the host's forwarding: they require it off, and check it stays off. */
export function ipForward(): string {
  return readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim();
}

/** A manager under a temp state root, with dockerd's switches as tests need them. */
export function testManager(c: Cleanups, name: string): NetworkManager {
  const root = c.tempDir(`net-${name}`);
  const mgr = new NetworkManager({ root, switches: { iptables: true, ipForward: false, ipMasq: false } });
  // Undo everything, also when the test failed: DEL every attachment, unpin, prune.
  c.add(async () => {
    await reconcile(mgr, () => false);
    for (const n of mgr.networks.list()) await mgr.removeNetwork(n.name);
  });
  return mgr;
}

/** Runs a program inside a pinned network namespace (only the network namespace is joined). */
export function inNs(netns: string, file: string, args: string[]): Promise<Result> {
  return exec('nsenter', [`--net=${netns}`, '--', file, ...args]);
}

export const busybox = (netns: string, ...args: string[]) => inNs(netns, BUSYBOX, args);

/** What the host has that a test could leave behind: links, iptables rules, mounts under root. */
export async function hostState(): Promise<{ links: string[]; rules: string[]; chains: string[] }> {
  const links = (JSON.parse((await must('ip', ['-j', 'link', 'show'])).stdout) as { ifname: string }[])
    .map((l) => l.ifname)
    .sort();
  const rules: string[] = [];
  const chains: string[] = [];
  for (const [table, cs] of await ruleset()) {
    for (const [chain, rs] of cs) {
      chains.push(`${table}/${chain}`);
      for (const r of rs) rules.push(`${table}/${chain} ${r.join(' ')}`);
    }
  }
  return { links, rules, chains: chains.filter((c) => /CNI|CORRAL/i.test(c)).sort() };
}

/** True when no route of the host (but the default one) overlaps the subnet. */
export async function unrouted(subnet: string): Promise<boolean> {
  const routes = JSON.parse((await must('ip', ['-j', '-4', 'route', 'show', 'table', 'all'])).stdout) as {
    dst: string;
    dev: string;
  }[];
  const s = parseCidr(subnet);
  return routes.every(
    (r) =>
      r.dst === 'default' ||
      !/^\d/.test(r.dst) ||
      r.dev?.startsWith('crl-') ||
      !overlaps(s, parseRoute(r.dst)),
  );
}

/** The host-local lease files under a manager's IPAM folder. */
export async function leases(mgr: NetworkManager): Promise<string[]> {
  const r = await exec('find', [mgr.ipamDir, '-type', 'f', '-name', '*.*.*.*']);
  return r.out ? r.out.split('\n').map((p) => p.slice(join(mgr.ipamDir).length + 1)) : [];
}

/**
 * The part of hostState that is a test's own: its bridges, the links enslaved to them, and the
 * rules that name either or one of its published ports. Other tests on the machine make and
 * remove their own links and rules meanwhile; whole-host comparisons were flaky for that.
 */
export function scoped(
  h: Awaited<ReturnType<typeof hostState>>,
  bridges: readonly string[],
  ports: readonly number[] = [],
): { links: string[]; rules: string[] } {
  const master = (l: string) => {
    try {
      return basename(readlinkSync(`/sys/class/net/${l}/master`));
    } catch {
      return '';
    }
  };
  const links = h.links.filter((l) => bridges.includes(l) || bridges.includes(master(l)));
  const names = [...links, ...bridges];
  const rules = h.rules.filter(
    (r) => names.some((n) => r.split(' ').includes(n)) || ports.some((p) => r.includes(`--dport ${p} `)),
  );
  return { links, rules };
}
