import { rmSync } from 'node:fs';
import { bridgeConflist } from './cni/conflist.js';
import { CniDriver } from './cni/driver.js';
import type { NetworkDriver } from './driver.js';
import { NetworkError } from './errors.js';
import { join, jsonName, readJson, writeJson } from './files.js';
import {
  enableIpForward,
  ensureBridgeLink,
  ensureBridgeRules,
  hostLinks,
  pruneSharedChains,
  removeBridge,
} from './host.js';
import { attachmentsIn, containersIn } from './kept.js';
import { withLock } from './lock.js';
import { NetnsDir } from './netns.js';
import { resolvePorts } from './ports.js';
import { mustRun } from './run.js';
import { type CreateNetworkOptions, DEFAULT_NETWORK, NetworkStore } from './store.js';
import { allocateSubnet, contains, overlaps, parseCidr, parseRoute } from './subnet.js';
import type { Attachment, AttachOptions, HostSwitches, NetworkRecord, PortMapping } from './types.js';

export interface NetworkManagerOptions {
  /** corral's own folder for networking (under the engine's state root). */
  root: string;
  driver?: NetworkDriver;
  /** dockerd's switches; corral's defaults change no sysctl and add no NAT rule. */
  switches?: Partial<HostSwitches>;
  /** Where new networks' subnets come from, in /`subnetSize` pieces. */
  pool?: string;
  subnetSize?: number;
  /** The default network's bridge (`corral0`); engines on other data roots pick their own. */
  defaultBridge?: string;
}

export const DEFAULT_SWITCHES: HostSwitches = { iptables: true, ipForward: false, ipMasq: false };
const CONTAINER_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
const MAC = /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i;

/**
 * Networks, namespaces and attachments of one engine, all kept under `root`:
 *   networks/NAME.json   the networks (data)
 *   netns/ID             each container's pinned network namespace
 *   attachments/ID/NETID.json  a container's place on a network, with the exact CNI list
 *   ipam/                host-local's leases (its dataDir)
 */
export class NetworkManager {
  readonly root: string;
  readonly networks: NetworkStore;
  readonly netns: NetnsDir;
  readonly driver: NetworkDriver;
  readonly switches: HostSwitches;
  readonly ipamDir: string;
  private readonly attDir: string;
  private readonly lockPath: string;
  private readonly pool: string;
  private readonly subnetSize: number;
  private readonly defaultBridge: string;

  constructor(opts: NetworkManagerOptions) {
    this.root = opts.root;
    this.networks = new NetworkStore(join(opts.root, 'networks'));
    this.netns = new NetnsDir(join(opts.root, 'netns'));
    this.driver = opts.driver ?? new CniDriver();
    this.switches = { ...DEFAULT_SWITCHES, ...opts.switches };
    this.ipamDir = join(opts.root, 'ipam');
    this.attDir = join(opts.root, 'attachments');
    this.lockPath = join(opts.root, 'lock');
    this.pool = opts.pool ?? '10.213.0.0/16';
    this.subnetSize = opts.subnetSize ?? 24;
    this.defaultBridge = opts.defaultBridge ?? 'corral0';
  }

  locked<T>(fn: () => Promise<T>): Promise<T> {
    return withLock(this.lockPath, fn);
  }

  /** The host's routes (not the default one): a network's subnet must not overlap them. */
  private async hostRoutes(): Promise<{ dst: string; dev?: string }[]> {
    const out = await mustRun('ip', ['-j', '-4', 'route', 'show', 'table', 'all'], 'listing routes');
    const bridges = new Set(this.networks.list().map((n) => n.bridge));
    return (JSON.parse(out) as { dst: string; dev?: string }[])
      .filter((r) => r.dst !== 'default' && !bridges.has(r.dev ?? ''))
      .map((r) => ({ dst: r.dst.includes('/') ? r.dst : `${r.dst}/32`, dev: r.dev }))
      .filter((r) => /^\d+\.\d+\.\d+\.\d+\/\d+$/.test(r.dst));
  }

  /** Docker's network create: a subnet of the pool that neither the host nor another network routes. */
  createNetwork(opts: CreateNetworkOptions): Promise<NetworkRecord> {
    if (opts.name === DEFAULT_NETWORK)
      return Promise.reject(
        new NetworkError('Conflict', `network with name ${DEFAULT_NETWORK} already exists`),
      );
    return this.make(opts);
  }

  private make(opts: CreateNetworkOptions): Promise<NetworkRecord> {
    return this.locked(async () => {
      const routes = await this.hostRoutes();
      let subnet = opts.subnet;
      if (subnet) {
        const s = parseCidr(subnet);
        const hit = routes.find((r) => overlaps(s, parseRoute(r.dst)));
        if (hit)
          throw new NetworkError(
            'Conflict',
            `subnet ${subnet} overlaps the host's route ${hit.dst}${hit.dev ? ` (dev ${hit.dev})` : ''}`,
          );
      } else {
        const used = [...routes.map((r) => r.dst), ...this.networks.list().map((n) => n.subnet)];
        subnet = allocateSubnet(this.pool, this.subnetSize, used);
      }
      return this.networks.create({ ...opts, subnet });
    });
  }

  /** The default `bridge` network, made on first use (bridge `corral0` unless told otherwise). */
  async defaultNetwork(): Promise<NetworkRecord> {
    const n = this.networks.find(DEFAULT_NETWORK);
    if (n) return n;
    try {
      return await this.make({ name: DEFAULT_NETWORK, bridge: this.defaultBridge });
    } catch (e) {
      const again = this.networks.find(DEFAULT_NETWORK);
      if (again) return again;
      throw e;
    }
  }

  /** A network's attachments, or every attachment of a container, or all. */
  attachments(filter: { containerId?: string; networkId?: string } = {}): Attachment[] {
    return attachmentsIn(this.root, filter);
  }

  /** The other containers of a network, for /etc/hosts: name, aliases and address. */
  peers(networkRef: string, except?: string): { ip: string; names: string[] }[] {
    const net = this.networks.get(networkRef);
    return this.attachments({ networkId: net.id })
      .filter((a) => a.containerId !== except && a.ip)
      .map((a) => ({ ip: a.ip as string, names: [a.name, ...a.aliases] }));
  }

  /**
   * A fresh, pinned namespace for the container, with `lo` up: all of `--network none`. `lo`
   * is brought up by corral itself (NetnsDir.create), not by the CNI loopback plugin: the
   * same result without two processes per container, which `--network none` cannot afford.
   */
  async createSandbox(containerId: string): Promise<string> {
    if (!CONTAINER_ID.test(containerId))
      throw new NetworkError('InvalidArgument', `invalid container id ${containerId}`);
    return this.netns.create(containerId);
  }

  /** Puts the container's namespace on a network (Docker's connect, and the start of run). */
  connect(
    containerId: string,
    name: string,
    networkRef: string,
    opts: AttachOptions = {},
  ): Promise<Attachment> {
    return this.locked(async () => {
      const net = this.networks.get(networkRef);
      if (!this.netns.isPinned(containerId))
        throw new NetworkError('NotFound', `container ${containerId} has no network namespace of its own`);
      const mine = this.attachments({ containerId });
      if (mine.some((a) => a.networkId === net.id))
        throw new NetworkError('Conflict', `container ${name} is already attached to network ${net.name}`);
      const subnet = parseCidr(net.subnet);
      if (opts.ip && (!contains(subnet, opts.ip) || opts.ip === net.gateway))
        throw new NetworkError(
          'InvalidArgument',
          `address ${opts.ip} is not a free host address of ${net.name} (${net.subnet})`,
        );
      if (opts.mac && !MAC.test(opts.mac))
        throw new NetworkError('InvalidArgument', `invalid MAC address ${opts.mac}`);
      if (opts.ports?.length && !this.switches.iptables)
        throw new NetworkError(
          'InvalidArgument',
          'cannot publish ports: iptables is turned off in the engine configuration',
        );
      const taken = this.attachments().flatMap((a) => a.ports);
      const ports = await resolvePorts(opts.ports ?? [], taken);
      let n = 0;
      while (mine.some((a) => a.ifname === `eth${n}`)) n++;
      const att: Attachment = {
        containerId,
        name,
        network: net.name,
        networkId: net.id,
        netns: this.netns.path(containerId),
        ifname: `eth${n}`,
        conflist: bridgeConflist(net, this.ipamDir, this.switches, { ports: ports.length > 0 }),
        runtimeConfig: runtimeConfig(ports, opts, subnet.prefix),
        ports,
        aliases: opts.aliases ?? [],
      };
      await ensureBridgeLink(net.bridge, `${net.gateway}/${subnet.prefix}`, this.root);
      // The bridge's rules (one iptables-save when they are there) are checked while the
      // plugins run: the container's program starts only once both are done. Not with ports:
      // portmap turns route_localnet on, so the guard against it must be in place first.
      const rules = this.switches.iptables ? ensureBridgeRules(net.bridge, net.internal) : Promise.resolve();
      rules.catch(() => {});
      if (ports.length) await rules;
      if (this.switches.ipForward) enableIpForward();
      const file = this.attFile(containerId, net.id);
      // Recorded before ADD: whatever ADD leaves, a later DEL (also after a crash) finds.
      writeJson(file, att);
      try {
        [att.result] = await Promise.all([this.driver.add(att), rules]);
      } catch (e) {
        await rules.catch(() => {});
        await this.driver.del(att).catch(() => {});
        rmSync(file, { force: true });
        throw e;
      }
      const ip = att.result.ips?.find((i) => i.address.includes('.'));
      att.ip = ip?.address.split('/')[0];
      att.mac = att.result.interfaces?.find((i) => i.name === att.ifname && i.sandbox)?.mac;
      writeJson(file, att);
      return att;
    });
  }

  disconnect(containerId: string, networkRef: string): Promise<void> {
    return this.locked(async () => {
      const net = this.networks.get(networkRef);
      const att = readJson<Attachment>(this.attFile(containerId, net.id));
      if (!att)
        throw new NetworkError('NotFound', `container ${containerId} is not attached to network ${net.name}`);
      await this.leave(att);
    });
  }

  /**
   * DEL (veth, lease, port and container rules) and forget. The network's bridge, its address
   * and its rules stay for as long as the network exists, as docker0 does: only when the
   * network's record is already gone does its bridge go with the last attachment.
   */
  private async leave(att: Attachment): Promise<void> {
    await this.driver.del(att);
    rmSync(this.attFile(att.containerId, att.networkId), { force: true });
    if (!this.networks.find(att.networkId))
      await removeBridge(att.conflist.plugins[0].bridge as string, true);
  }

  /** Every attachment DEL'd, `lo` DEL'd, the namespace unpinned. Idempotent. */
  destroySandbox(containerId: string): Promise<void> {
    return this.locked(async () => {
      let first: unknown;
      for (const att of this.attachments({ containerId })) {
        await this.leave(att).catch((e) => {
          first ??= e;
        });
      }
      if (first) throw first;
      this.netns.remove(containerId);
      rmSync(join(this.attDir, containerId), { recursive: true, force: true });
    });
  }

  /**
   * Removes a network that no container uses: its bridge, the rules that name it, its leases,
   * the shared chains once nothing uses them, then its record (last, so that a crash half way
   * leaves a record whose removal can be run again, never a bridge nobody knows).
   */
  removeNetwork(ref: string): Promise<NetworkRecord> {
    return this.locked(async () => {
      const net = this.networks.get(ref);
      const users = this.attachments({ networkId: net.id });
      if (users.length > 0)
        throw new NetworkError(
          'Conflict',
          `network ${net.name} has active endpoints (${users.map((u) => u.name).join(', ')})`,
        );
      await this.takeDown(net);
      await pruneSharedChains();
      rmSync(join(this.ipamDir, net.name), { recursive: true, force: true });
      this.networks.remove(net.name);
      return net;
    });
  }

  /**
   * Takes the host side of every network no container is attached to away (the default
   * network's included): bridges, the rules that name them, then the shared chains once
   * unused. The records stay, and a network's bridge is made again when a container next
   * joins it. What stopping dockerd with docker0 removed would be; tests call it in teardown
   * so that the machine is left without a bridge or rule they made. Returns the bridges.
   */
  down(): Promise<string[]> {
    return this.locked(async () => {
      const links = new Set(await hostLinks());
      const gone: string[] = [];
      for (const net of this.networks.list()) {
        if (this.attachments({ networkId: net.id }).length > 0) continue;
        if (links.has(net.bridge)) gone.push(net.bridge);
        await this.takeDown(net);
      }
      await pruneSharedChains();
      return gone;
    });
  }

  /**
   * The bridge (when present) and every rule that names it. Also with the iptables switch off
   * now: the rules may be from when it was on (the switches are the root's, and can change);
   * removing corral's own rules adds none.
   */
  private async takeDown(net: NetworkRecord): Promise<void> {
    await removeBridge(net.bridge, true);
  }

  /** Removes every user network that no container uses (not the default one). */
  async pruneNetworks(): Promise<string[]> {
    const gone: string[] = [];
    for (const n of this.networks.list()) {
      if (n.name === DEFAULT_NETWORK || this.attachments({ networkId: n.id }).length > 0) continue;
      await this.removeNetwork(n.id);
      gone.push(n.name);
    }
    return gone;
  }

  private attFile(containerId: string, networkId: string): string {
    return join(this.attDir, containerId, jsonName(networkId));
  }

  /** The ids of every container that has something here (a namespace, an attachment). */
  knownContainers(): string[] {
    return containersIn(this.root);
  }
}

function runtimeConfig(
  ports: readonly PortMapping[],
  opts: AttachOptions,
  prefix: number,
): Record<string, unknown> {
  const rc: Record<string, unknown> = {};
  if (ports.length)
    rc.portMappings = ports.map((p) => ({
      hostPort: p.hostPort,
      containerPort: p.containerPort,
      protocol: p.protocol,
      ...(p.hostIP !== '0.0.0.0' ? { hostIP: p.hostIP } : {}),
    }));
  if (opts.ip) rc.ips = [`${opts.ip}/${prefix}`];
  if (opts.mac) rc.mac = opts.mac;
  return rc;
}
