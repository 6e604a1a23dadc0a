// A container on the network while it runs: its namespace and attachments made at each start
// (before the spec is written), its /etc files written inside its root, its peers' /etc/hosts
// kept current, and everything taken down when it ends (or, after a SIGKILL, when an engine
// next opens the data root). Both front-ends get all of it through the Engine's methods.
import { readdirSync, readFileSync, writeSync } from 'node:fs';
import {
  attachmentsIn,
  DEFAULT_NETWORK,
  type HostsEntry,
  hostnameFile,
  hostsFile,
  type PortMapping,
  resolvConf,
  writeEtcFiles,
} from '@corral/network';
import { close, fdPath, O, openat, openInRoot, openRoot, procStartTime, unlinkat } from '@corral/sys';
import type { EngineContext } from './context.js';
import { EngineError } from './errors.js';
import { fromNetwork } from './network-config.js';
import type { ContainerRecord } from './records.js';

/** Modes in which the container has a namespace of its own that corral made and removes. */
export function ownsSandbox(r: ContainerRecord): boolean {
  const n = r.hostConfig.network;
  return !!n && n.mode !== 'host' && !n.mode.startsWith('container:');
}

/** The container whose namespace (and addresses) this one uses: itself, or container:ID's. */
export function netOwner(r: ContainerRecord): string {
  const m = r.hostConfig.network?.mode ?? 'host';
  return m.startsWith('container:') ? m.slice('container:'.length) : r.id;
}

/** The ports published for a container while it runs (resolved: no host port 0). */
export function portsOf(ctx: Pick<EngineContext, 'root'>, r: ContainerRecord): PortMapping[] {
  if (!r.hostConfig.network || r.hostConfig.network.mode === 'host') return [];
  // Read from the files (as ctx.net.attachments does), without making the network manager.
  return attachmentsIn(`${ctx.root}/network`, { containerId: netOwner(r) }).flatMap((a) => a.ports);
}

const readHostFile = (path: string) => {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
};

/**
 * Makes the container's network for a start: a pinned namespace, joined to each of its
 * networks (ports published on the first). Returns the namespace's path for the spec, or
 * null for the host's. Whatever a failed setup made is taken down again.
 */
export async function setupNetwork(ctx: EngineContext, r: ContainerRecord): Promise<string | null> {
  const n = r.hostConfig.network;
  if (!n || n.mode === 'host') return null;
  if (n.mode.startsWith('container:')) {
    const other = ctx.records.read(netOwner(r));
    if (other?.state.status !== 'running')
      throw new EngineError(
        'Conflict',
        `cannot join the network namespace of container ${other?.name ?? netOwner(r)}: it is not running`,
      );
    if (!other.hostConfig.network || other.hostConfig.network.mode === 'host') return null;
    if (ownsSandbox(other) && ctx.net.netns.isPinned(other.id)) return ctx.net.netns.path(other.id);
    return `/proc/${other.state.pid}/ns/net`;
  }
  // While this process sets it up, an engine opening the root elsewhere leaves it alone.
  const startTime = procStartTime(process.pid);
  ctx.records.update(r.id, (x) => {
    x.state.networkOwner = startTime === null ? undefined : { pid: process.pid, startTime };
  });
  try {
    // What an earlier run of it left (a SIGKILLed watcher) goes first.
    if (ctx.net.knownContainers().includes(r.id)) await ctx.net.destroySandbox(r.id);
    const path = await ctx.net.createSandbox(r.id);
    let first = true;
    for (const [name, ep] of Object.entries(n.networks)) {
      if (name === DEFAULT_NETWORK) await ctx.net.defaultNetwork();
      await ctx.net.connect(r.id, r.name, name, { ...ep, ports: first ? n.ports : [] });
      first = false;
    }
    refreshHosts(ctx, peersOf(ctx, r.id));
    return path;
  } catch (e) {
    await ctx.net.destroySandbox(r.id).catch(() => {});
    throw fromNetwork(e, 'setting up the network: ');
  }
}

/** The ids of the containers that share a user network with `id` (they know it by name). */
export function peersOf(ctx: EngineContext, id: string): string[] {
  const nets = ctx.net
    .attachments({ containerId: id })
    .filter((a) => a.network !== DEFAULT_NETWORK)
    .map((a) => a.networkId);
  const out = new Set<string>();
  for (const net of nets)
    for (const a of ctx.net.attachments({ networkId: net })) if (a.containerId !== id) out.add(a.containerId);
  return [...out];
}

/** Docker's /etc/hosts of a container: itself, --add-host, and its peers on user networks. */
function hostsOf(ctx: EngineContext, r: ContainerRecord): string {
  const n = r.hostConfig.network;
  if (!n || n.mode === 'host')
    return readHostFile('/etc/hosts') || hostsFile({ hostname: r.config.hostname });
  const owner = netOwner(r);
  const atts = ctx.net.attachments({ containerId: owner });
  const peers = new Map<string, HostsEntry>();
  for (const a of atts) {
    if (a.network === DEFAULT_NETWORK) continue;
    for (const p of ctx.net.peers(a.networkId, owner)) peers.set(`${p.ip} ${p.names.join(' ')}`, p);
  }
  return hostsFile({
    hostname: r.config.hostname,
    ips: atts.map((a) => a.ip).filter((ip): ip is string => !!ip),
    extra: n.extraHosts,
    peers: [...peers.values()],
  });
}

function resolvOf(r: ContainerRecord): string {
  const n = r.hostConfig.network;
  const host = readHostFile('/etc/resolv.conf');
  const custom = n && (n.dns.length || n.dnsSearch.length || n.dnsOptions.length);
  // The host's namespace reaches the host's own (loopback) resolvers: its file as it is.
  if ((!n || n.mode === 'host') && !custom) return host;
  return resolvConf(host, { dns: n?.dns, search: n?.dnsSearch, options: n?.dnsOptions });
}

/**
 * Writes files inside the root mounted at `rootfs`, through an fd of it (never a host path).
 * A symlink the image has in place of one of them (resolv.conf -> ../run/...) is replaced by
 * the file: removed through the fd of its folder inside the root, never followed.
 */
function writeInRoot(rootfs: string, files: Parameters<typeof writeEtcFiles>[1]): void {
  const fd = openRoot(rootfs);
  const existing: typeof files = {};
  try {
    const etc = openInRoot(fd, 'etc', O.PATH | O.DIRECTORY | O.CLOEXEC, { create: 'dir' });
    try {
      // What etc holds, read once through its fd (a failed lookup per file costs an error).
      const there = new Map(readdirSync(fdPath(etc), { withFileTypes: true }).map((e) => [e.name, e]));
      const names = { hosts: 'hosts', hostname: 'hostname', resolvConf: 'resolv.conf' } as const;
      for (const [key, name] of Object.entries(names) as [keyof typeof names, string][]) {
        const content = files[key];
        if (content === undefined) continue;
        const entry = there.get(name);
        if (entry?.isSymbolicLink()) unlinkat(etc, name);
        else if (entry) {
          existing[key] = content; // replaced only if regular (writeEtcFiles checks)
          continue;
        }
        // Absent: made here, in etc's fd, never following anything (EXCL: a name that
        // appeared meanwhile fails the start).
        const out = openat(etc, name, O.WRONLY | O.CREAT | O.EXCL | O.NOFOLLOW | O.CLOEXEC, 0o644);
        try {
          writeSync(out, content);
        } finally {
          close(out);
        }
      }
    } finally {
      close(etc);
    }
    writeEtcFiles(fd, existing);
  } finally {
    close(fd);
  }
}

/** /etc/hosts, /etc/hostname and /etc/resolv.conf written in the container's root at start. */
export function writeEtc(ctx: EngineContext, r: ContainerRecord, rootfs: string): void {
  try {
    writeInRoot(rootfs, {
      hosts: hostsOf(ctx, r),
      hostname: hostnameFile(r.config.hostname),
      resolvConf: resolvOf(r),
    });
  } catch (e) {
    throw new EngineError('CannotStart', `writing the container's /etc files: ${(e as Error).message}`);
  }
}

/**
 * Rewrites /etc/hosts of the running ones among `ids` (a peer joined or left a network), and
 * of the containers that share their namespace. A container that ended meanwhile is skipped.
 */
export function refreshHosts(ctx: EngineContext, ids: readonly string[]): void {
  if (!ids.length) return;
  const targets = new Set(ids);
  for (const id of ctx.records.ids()) {
    const r = ctx.records.peek(id);
    if (r && targets.has(netOwner(r))) targets.add(r.id);
  }
  for (const id of targets) {
    const r = ctx.records.peek(id);
    if (r?.state.status !== 'running') continue;
    try {
      writeInRoot(ctx.rootfs(r.id), { hosts: hostsOf(ctx, r) });
    } catch {
      // it ended meanwhile, or its /etc/hosts is no regular file: nothing to keep current
    }
  }
}

/** Takes the container's namespace and attachments down (stop, rm), and tells its peers. */
export async function teardownNetwork(ctx: EngineContext, r: ContainerRecord): Promise<void> {
  if (!ownsSandbox(r) || !ctx.net.knownContainers().includes(r.id)) return;
  const peers = peersOf(ctx, r.id);
  await ctx.net.destroySandbox(r.id);
  refreshHosts(ctx, peers);
}

/**
 * What containers that no longer run left on the network (their engine or watcher was
 * SIGKILLed): namespaces, veths, port rules and leases. Run when an engine opens its root;
 * cheap when there is nothing to do (two folder listings).
 */
/**
 * Whether the network kept for a container is to be taken down: the container is removed
 * (`null`) or does not run, and no launch is setting the network up.
 */
export function networkLeft(r: ContainerRecord | null, running: (r: ContainerRecord) => boolean): boolean {
  const owner = r?.state.networkOwner;
  if (r && owner && procStartTime(owner.pid) === owner.startTime) return false; // being set up
  return !(r && running(r));
}

export async function reconcileNetworks(
  ctx: EngineContext,
  running: (r: ContainerRecord) => boolean,
): Promise<string[]> {
  const gone: string[] = [];
  for (const id of ctx.net.knownContainers()) {
    const r = ctx.records.peek(id);
    if (r === undefined) continue; // damaged: left to `system check`, never taken down unread
    if (!networkLeft(r, running)) continue;
    const peers = peersOf(ctx, id);
    await ctx.net.destroySandbox(id).catch(() => {});
    refreshHosts(ctx, peers);
    gone.push(id);
  }
  return gone;
}
