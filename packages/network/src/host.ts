import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { close, ioctl, NETDEV, socket } from '@corral/sys';
import { MissingPluginError } from './errors.js';
import { withLock } from './lock.js';
import { mustRun, run } from './run.js';

/** The comment on the rules corral adds itself, so that a leftover is recognised. */
export const GUARD_COMMENT = 'corral-localnet-guard';

/** The chains the portmap and firewall plugins share between all their users. */
const SHARED_CHAINS = {
  nat: ['CNI-HOSTPORT-DNAT', 'CNI-HOSTPORT-SETMARK', 'CNI-HOSTPORT-MASQ'],
  filter: ['CNI-FORWARD', 'CNI-ADMIN', 'CNI-ISOLATION-STAGE-1', 'CNI-ISOLATION-STAGE-2'],
} as const;

export async function iptables(
  args: readonly string[],
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  try {
    return await run('iptables', ['-w', ...args]);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT')
      throw new MissingPluginError('iptables', ['PATH'], 'iptables');
    throw e;
  }
}

/** Every link's name on the host. */
export async function hostLinks(): Promise<string[]> {
  const out = await mustRun('ip', ['-j', 'link', 'show'], 'listing links');
  return (JSON.parse(out) as { ifname: string }[]).map((l) => l.ifname);
}

/**
 * The network's bridge with its gateway address, up. corral, not the bridge plugin, sets the
 * address: the plugin's gateway mode would turn on ip forwarding (see conflist.ts).
 *
 * With iptables allowed, it also guards the bridge against CVE-2020-8558: the portmap
 * plugin sets route_localnet on the bridge so that 127.0.0.1 can be published, which would
 * also let a container send packets to the host's 127.0.0.1 services through its gateway.
 * A raw PREROUTING rule drops anything arriving on the bridge for 127.0.0.0/8 (the replies
 * to published-port traffic arrive for the bridge's address and pass).
 */
export async function ensureBridge(
  name: string,
  gatewayCidr: string,
  rules: boolean,
  owner?: string,
  internal = false,
): Promise<void> {
  await ensureBridgeLink(name, gatewayCidr, owner);
  if (rules) await ensureBridgeRules(name, internal);
}

/** The bridge link alone (see ensureBridge); its rules are ensureBridgeRules'. */
export async function ensureBridgeLink(name: string, gatewayCidr: string, owner?: string): Promise<void> {
  if (!(await bridgeReady(name, gatewayCidr))) await makeBridge(name, gatewayCidr, owner);
}

/** corral's filter chains: the per-network forwarding rules, and the isolation between networks. */
export const FORWARD_CHAIN = 'CORRAL-FORWARD';
export const ISOLATION_CHAIN = 'CORRAL-ISOLATION';

interface BridgeRule {
  table: 'raw' | 'filter';
  chain: string;
  /** Inserted at the top rather than appended. */
  first?: boolean;
  /** Unique per kind of rule; with the bridge's name, how the rule is found again. */
  comment: string;
  args: string[];
}

/**
 * Every rule a bridge has for as long as its network exists, each marked by a comment: the
 * CVE-2020-8558 guard, and in place of the firewall plugin's per-container rules, Docker's
 * per-network ones: isolation from corral's other bridges (a packet from this bridge to
 * another is dropped), replies into the bridge and anything out of it accepted (what matters
 * when the host forwards, e.g. with FORWARD's policy DROP).
 */
function bridgeRules(br: string, internal = false): BridgeRule[] {
  // An --internal network: nothing leaves the bridge for another interface, nothing comes in
  // from one (Docker's rules for internal networks), also for a container that routes itself.
  const closed: BridgeRule[] = internal
    ? [
        {
          table: 'filter',
          chain: FORWARD_CHAIN,
          first: true,
          comment: 'corral-internal-out',
          args: ['-i', br, '!', '-o', br, '-j', 'DROP'],
        },
        {
          table: 'filter',
          chain: FORWARD_CHAIN,
          first: true,
          comment: 'corral-internal-in',
          args: ['-o', br, '!', '-i', br, '-j', 'DROP'],
        },
      ]
    : [];
  return [
    ...closed,
    { table: 'raw', chain: 'PREROUTING', first: true, comment: GUARD_COMMENT, args: guardArgs(br) },
    {
      table: 'filter',
      chain: FORWARD_CHAIN,
      comment: 'corral-isolate',
      args: ['-i', br, '!', '-o', br, '-j', ISOLATION_CHAIN],
    },
    {
      table: 'filter',
      chain: FORWARD_CHAIN,
      comment: 'corral-replies',
      args: ['-o', br, '-m', 'conntrack', '--ctstate', 'RELATED,ESTABLISHED', '-j', 'ACCEPT'],
    },
    { table: 'filter', chain: FORWARD_CHAIN, comment: 'corral-outbound', args: ['-i', br, '-j', 'ACCEPT'] },
    { table: 'filter', chain: ISOLATION_CHAIN, comment: 'corral-isolated', args: ['-o', br, '-j', 'DROP'] },
  ];
}

/**
 * The bridge's rules, the chains and FORWARD's jump into them: one iptables-save when all
 * are there (each container's join), a few iptables runs when not (the network's first).
 */
export async function ensureBridgeRules(br: string, internal = false): Promise<void> {
  await withLock(SHARED_CHAINS_LOCK, () => ensureBridgeRulesLocked(br, internal));
}

/**
 * The chains every data root's bridges share (CORRAL-FORWARD, CORRAL-ISOLATION, FORWARD's jump)
 * are made and pruned under this machine-wide lock: a prune of another root's last network
 * between a check and an add took the chain away (iptables: No chain/target/match), or flushed
 * the rules just added. In /run, where only root makes files.
 */
const SHARED_CHAINS_LOCK = '/run/corral-iptables.lock';

async function ensureBridgeRulesLocked(br: string, internal: boolean): Promise<void> {
  const rs = await ruleset();
  const filter = rs.get('filter');
  const has = (table: string, chain: string, comment: string, bridge?: string) =>
    (rs.get(table)?.get(chain) ?? []).some(
      (r) =>
        hasToken(r, '--comment', comment) &&
        (!bridge || hasToken(r, '-i', bridge) || hasToken(r, '-o', bridge)),
    );
  for (const chain of [FORWARD_CHAIN, ISOLATION_CHAIN]) {
    if (filter?.has(chain)) continue;
    const r = await iptables(['-t', 'filter', '-N', chain]);
    if (r.status !== 0 && !/exists/i.test(r.stderr))
      throw new Error(`creating chain ${chain}: ${r.stderr.trim()}`);
  }
  if (!has('filter', 'FORWARD', 'corral-forward'))
    await mustIptables(
      ['-t', 'filter', '-I', 'FORWARD', '-m', 'comment', '--comment', 'corral-forward', '-j', FORWARD_CHAIN],
      br,
    );
  for (const rule of bridgeRules(br, internal)) {
    if (has(rule.table, rule.chain, rule.comment, br)) continue;
    await mustIptables(
      [
        '-t',
        rule.table,
        rule.first ? '-I' : '-A',
        rule.chain,
        ...rule.args,
        '-m',
        'comment',
        '--comment',
        rule.comment,
      ],
      br,
    );
  }
}

async function mustIptables(args: string[], br: string): Promise<void> {
  const r = await iptables(args);
  if (r.status !== 0)
    throw new Error(`adding the rules of bridge ${br}: iptables ${args.join(' ')}: ${r.stderr.trim()}`);
}

/** netdevice(7): a link's primary IPv4 address and its netmask. */
const SIOCGIFADDR = 0x8915;
const SIOCGIFNETMASK = 0x891b;

/**
 * The bridge is there, up, with the gateway address as its (primary) address: asked of the
 * kernel in-process (sysfs flags, two ioctls), not by an `ip` run (25-60 ms on each join).
 * Anything unexpected (another first address) falls back to `ip`, which sees them all.
 */
function bridgeReadyFast(name: string, gatewayCidr: string): boolean | undefined {
  let flags: number;
  try {
    flags = Number.parseInt(readFileSync(`/sys/class/net/${name}/flags`, 'utf8'), 16);
  } catch {
    return false; // no such link
  }
  if (!(flags & NETDEV.IFF_UP)) return false;
  const [addr, prefix] = gatewayCidr.split('/');
  const fd = socket(NETDEV.AF_INET, NETDEV.SOCK_DGRAM | NETDEV.SOCK_CLOEXEC);
  try {
    const ifr = Buffer.alloc(40); // struct ifreq: the name, then a sockaddr_in (address at 20)
    ifr.write(name, 0, 'latin1');
    ioctl(fd, SIOCGIFADDR, ifr);
    const got = [...ifr.subarray(20, 24)].join('.');
    ioctl(fd, SIOCGIFNETMASK, ifr);
    const bits = ifr.readUInt32BE(20).toString(2).replace(/0+$/, '').length;
    return got === addr && String(bits) === prefix ? true : undefined;
  } catch {
    return undefined; // no IPv4 address (EADDRNOTAVAIL) or the link went: ask `ip`
  } finally {
    close(fd);
  }
}

/** The bridge is there, up, with the gateway address. */
async function bridgeReady(name: string, gatewayCidr: string): Promise<boolean> {
  const fast = bridgeReadyFast(name, gatewayCidr);
  if (fast !== undefined) return fast;
  const r = await run('ip', ['-j', 'addr', 'show', 'dev', name]);
  if (r.status !== 0) return false;
  const [addr, prefix] = gatewayCidr.split('/');
  const links = JSON.parse(r.stdout || '[]') as {
    flags?: string[];
    addr_info?: { local: string; prefixlen: number }[];
  }[];
  const l = links[0];
  return (
    !!l?.flags?.includes('UP') &&
    !!l.addr_info?.some((a) => a.local === addr && String(a.prefixlen) === prefix)
  );
}

/** A bridge's alias names the network folder that owns it: see sweepOrphanBridges. */
const OWNER_ALIAS = 'corral:';

async function makeBridge(name: string, gatewayCidr: string, owner?: string): Promise<void> {
  const add = await run('ip', ['link', 'add', 'name', name, 'type', 'bridge']);
  if (add.status !== 0 && !/exists/i.test(add.stderr))
    throw new Error(`creating bridge ${name}: ${add.stderr.trim()}`);
  if (owner && OWNER_ALIAS.length + owner.length < 256)
    await run('ip', ['link', 'set', 'dev', name, 'alias', OWNER_ALIAS + owner]);
  const addr = await run('ip', ['addr', 'add', gatewayCidr, 'dev', name]);
  if (addr.status !== 0 && !/(exists|already assigned)/i.test(addr.stderr))
    throw new Error(`addressing bridge ${name}: ${addr.stderr.trim()}`);
  await mustRun('ip', ['link', 'set', name, 'up'], `bringing bridge ${name} up`);
}

function guardArgs(bridge: string): string[] {
  return ['-i', bridge, '-d', '127.0.0.0/8', '-j', 'DROP'];
}

/**
 * Removes the bridge and every iptables rule (in any table) that names it as an input or
 * output interface: the guard, and what the firewall plugin's isolation left for it.
 */
export async function removeBridge(name: string, withRules: boolean): Promise<void> {
  const del = await run('ip', ['link', 'del', name]);
  if (del.status !== 0 && !/(cannot find|does not exist)/i.test(del.stderr))
    throw new Error(`removing bridge ${name}: ${del.stderr.trim()}`);
  if (withRules) await deleteRules((rule) => hasToken(rule, '-i', name) || hasToken(rule, '-o', name));
}

function hasToken(rule: string[], flag: string, value: string): boolean {
  for (let i = 0; i + 1 < rule.length; i++) if (rule[i] === flag && rule[i + 1] === value) return true;
  return false;
}

/** `iptables-save` as table -> chain -> rules (each the tokens after `-A CHAIN`). */
export async function ruleset(): Promise<Map<string, Map<string, string[][]>>> {
  const out = await run('iptables-save', []).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return null; // no iptables on the host: no rule to find
    throw e;
  });
  if (out === null) return new Map();
  if (out.status !== 0) throw new Error(`iptables-save: ${out.stderr.trim()}`);
  const tables = new Map<string, Map<string, string[][]>>();
  let chains: Map<string, string[][]> | undefined;
  for (const line of out.stdout.split('\n')) {
    if (line.startsWith('*')) {
      chains = new Map();
      tables.set(line.slice(1), chains);
    } else if (line.startsWith(':') && chains) {
      chains.set(line.slice(1).split(' ')[0], []);
    } else if (line.startsWith('-A ') && chains) {
      const tokens = splitRule(line);
      chains.get(tokens[1])?.push(tokens.slice(2));
    }
  }
  return tables;
}

/** iptables-save quotes arguments with spaces (comments): split like a shell would. */
function splitRule(line: string): string[] {
  const out: string[] = [];
  for (const m of line.matchAll(/"((?:[^"\\]|\\.)*)"|(\S+)/g)) out.push(m[1] ?? m[2]);
  return out;
}

async function deleteRules(match: (rule: string[], table: string, chain: string) => boolean): Promise<void> {
  for (const [table, chains] of await ruleset()) {
    for (const [chain, rules] of chains) {
      for (const rule of rules)
        if (match(rule, table, chain)) await iptables(['-t', table, '-D', chain, ...rule]);
    }
  }
}

/**
 * Takes away the chains the portmap and firewall plugins create on first use and never
 * remove, once nothing uses them: no port mapping left in CNI-HOSTPORT-DNAT, no container
 * rule left in CNI-FORWARD, no bridge left in the isolation stages. Other CNI users (podman
 * in CNI mode) share these chains; a chain still in use by anyone is left alone.
 */
export async function pruneSharedChains(): Promise<void> {
  await withLock(SHARED_CHAINS_LOCK, pruneSharedChainsLocked);
}

async function pruneSharedChainsLocked(): Promise<void> {
  const rs = await ruleset();
  const nat = rs.get('nat');
  const filter = rs.get('filter');
  const drop: [string, string][] = [];
  if (nat?.has('CNI-HOSTPORT-DNAT') && nat.get('CNI-HOSTPORT-DNAT')?.length === 0)
    for (const c of SHARED_CHAINS.nat) if (nat.has(c)) drop.push(['nat', c]);
  const onlyReturn = (rules?: string[][]) => (rules ?? []).every((r) => bare(r) === '-j RETURN');
  const fwd = filter?.get('CNI-FORWARD');
  if (fwd?.every((r) => bare(r) === '-j CNI-ADMIN') && (filter?.get('CNI-ADMIN')?.length ?? 0) === 0) {
    drop.push(['filter', 'CNI-FORWARD'], ['filter', 'CNI-ADMIN']);
  }
  if (
    filter?.has(FORWARD_CHAIN) &&
    (filter.get(FORWARD_CHAIN)?.length ?? 0) === 0 &&
    (filter.get(ISOLATION_CHAIN)?.length ?? 0) === 0
  )
    drop.push(
      ['filter', FORWARD_CHAIN],
      ...(filter.has(ISOLATION_CHAIN) ? [['filter', ISOLATION_CHAIN] as [string, string]] : []),
    );
  if (filter?.has('CNI-ISOLATION-STAGE-1') && onlyReturn(filter.get('CNI-ISOLATION-STAGE-1')))
    if (onlyReturn(filter.get('CNI-ISOLATION-STAGE-2')))
      drop.push(['filter', 'CNI-ISOLATION-STAGE-1'], ['filter', 'CNI-ISOLATION-STAGE-2']);
  if (drop.length === 0) return;
  const doomed = new Set(drop.map(([t, c]) => `${t}/${c}`));
  // Jumps into the doomed chains first (from anywhere), then the chains themselves.
  await deleteRules((rule, table) => {
    const j = rule.indexOf('-j');
    return j >= 0 && doomed.has(`${table}/${rule[j + 1]}`);
  });
  for (const [t, c] of drop) await iptables(['-t', t, '-F', c]);
  for (const [t, c] of drop) await iptables(['-t', t, '-X', c]);
}

/** A rule without its comment match, to compare with a plugin's baseline rules. */
function bare(rule: string[]): string {
  const out: string[] = [];
  for (let i = 0; i < rule.length; i++) {
    if (rule[i] === '-m' && rule[i + 1] === 'comment') i += 1;
    else if (rule[i] === '--comment') i += 1;
    else out.push(rule[i]);
  }
  return out.join(' ');
}

/** Turns on net.ipv4.ip_forward (the ip-forward switch); never turns it off. */
export function enableIpForward(): void {
  const p = '/proc/sys/net/ipv4/ip_forward';
  if (readFileSync(p, 'utf8').trim() !== '1') writeFileSync(p, '1');
}

/**
 * Bridges (and their rules) whose owning network folder is gone: what a data root removed
 * without `corral network down` left on the host. Only bridges corral made and named (the
 * alias set at creation) are considered; returns what was removed, bridge and owner.
 */
export async function sweepOrphanBridges(): Promise<{ bridge: string; owner: string }[]> {
  const r = await run('ip', ['-j', '-d', 'link', 'show', 'type', 'bridge']);
  if (r.status !== 0) return [];
  const links = JSON.parse(r.stdout || '[]') as { ifname: string; ifalias?: string }[];
  const removed: { bridge: string; owner: string }[] = [];
  for (const l of links) {
    if (!l.ifalias?.startsWith(OWNER_ALIAS)) continue;
    const owner = l.ifalias.slice(OWNER_ALIAS.length);
    if (existsSync(owner)) continue;
    await removeBridge(l.ifname, true);
    removed.push({ bridge: l.ifname, owner });
  }
  if (removed.length) await pruneSharedChains();
  return removed;
}
