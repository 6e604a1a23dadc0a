import { createHash } from 'node:crypto';
import { type Attachment, DEFAULT_NETWORK, type NetworkRecord, parseCidr, RESERVED } from '@corral/network';
import type { EngineContext } from './context.js';
import { EngineError } from './errors.js';
import { getRecord } from './lifecycle.js';
import { netOwner, ownsSandbox, peersOf, refreshHosts } from './network.js';
import { type EndpointConfig, netOp } from './network-config.js';
import type { ContainerRecord } from './records.js';

/** What `network create` takes (Docker's flags). */
export interface NetworkCreateRequest {
  name: string;
  subnet?: string;
  gateway?: string;
  internal?: boolean;
  labels?: Record<string, string>;
}

/** A network and the containers on it now (Docker's network inspect). */
export interface NetworkDetails extends NetworkRecord {
  containers: { id: string; name: string; ip: string | null; mac: string | null }[];
}

/** A container's network settings for inspect: its mode, networks and published ports. */
export interface NetworkSettingsView {
  mode: string;
  networks: Record<
    string,
    { ip: string | null; mac: string | null; gateway: string | null; aliases: string[] }
  >;
  ports: Attachment['ports'];
}

/** Docker's pre-defined networks that are modes, not bridges: listed and inspected, never made. */
const PREDEFINED = { host: 'host', none: 'null' } as const;
type Predefined = keyof typeof PREDEFINED;
const isPredefined = (ref: string): ref is Predefined => Object.hasOwn(PREDEFINED, ref);

const endpointOf = (a: Attachment) => ({
  id: a.containerId,
  name: a.name,
  ip: a.ip ?? null,
  mac: a.mac ?? null,
});

/**
 * Docker's network commands (`network create|ls|inspect|rm|connect|disconnect|prune`), for
 * both front-ends: `engine.networks`.
 */
export class EngineNetworks {
  readonly #ctx: EngineContext;

  constructor(ctx: EngineContext) {
    this.#ctx = ctx;
  }

  create(req: NetworkCreateRequest): Promise<NetworkRecord> {
    if (req.gateway && !req.subnet) throw new EngineError('InvalidArgument', '--gateway needs --subnet');
    return netOp(() => {
      if (req.subnet) parseCidr(req.subnet);
      return this.#ctx.net.createNetwork(req);
    });
  }

  /**
   * Every network, as Docker lists them: the default `bridge` (made as data here if it is not
   * yet), the pre-defined `host` and `none`, and the user networks, by name.
   */
  async list(): Promise<NetworkRecord[]> {
    const dflt = await netOp(() => this.#ctx.net.defaultNetwork());
    const modes = (Object.keys(PREDEFINED) as Predefined[]).map((m) => this.#predefined(m, dflt.created));
    return [...this.#ctx.net.networks.list(), ...modes].sort((a, b) => a.name.localeCompare(b.name));
  }

  async inspect(ref: string): Promise<NetworkDetails> {
    const mode = this.#mode(ref);
    if (mode) {
      const dflt = await netOp(() => this.#ctx.net.defaultNetwork());
      return { ...this.#predefined(mode, dflt.created), containers: this.#inMode(mode) };
    }
    const net = await this.#find(ref);
    return { ...net, containers: this.#ctx.net.attachments({ networkId: net.id }).map(endpointOf) };
  }

  /** `host` or `none` by name or by its id (or a unique prefix of it). */
  #mode(ref: string): Predefined | undefined {
    if (isPredefined(ref)) return ref;
    if (ref.length < 3 || !/^[0-9a-f]+$/.test(ref)) return undefined;
    return (Object.keys(PREDEFINED) as Predefined[]).find((m) => this.#predefinedId(m).startsWith(ref));
  }

  /** A stable id per data root, as Docker gives its pre-defined networks one per daemon. */
  #predefinedId(mode: Predefined): string {
    return createHash('sha256').update(`${this.#ctx.root}\0${mode}`).digest('hex');
  }

  #predefined(mode: Predefined, created: string): NetworkRecord {
    return {
      id: this.#predefinedId(mode),
      name: mode,
      driver: PREDEFINED[mode],
      bridge: '',
      subnet: '',
      gateway: '',
      internal: false,
      labels: {},
      created,
    };
  }

  /** The running containers in network mode `host` or `none` (Docker's Containers of those). */
  #inMode(mode: Predefined): NetworkDetails['containers'] {
    const out: NetworkDetails['containers'] = [];
    for (const id of this.#ctx.records.ids()) {
      const r = this.#ctx.records.peek(id);
      if (r?.state.status === 'running' && (r.hostConfig.network?.mode ?? 'host') === mode)
        out.push({ id: r.id, name: r.name, ip: null, mac: null });
    }
    return out;
  }

  async remove(ref: string): Promise<NetworkRecord> {
    if (ref === DEFAULT_NETWORK || RESERVED.has(ref) || this.#mode(ref))
      throw new EngineError('Forbidden', `${ref} is a pre-defined network and cannot be removed`);
    const net = await this.#find(ref);
    const users = this.#users(net.name);
    if (users.length)
      throw new EngineError(
        'Conflict',
        `network ${net.name} is in use by container ${users.map((u) => u.name).join(', ')}`,
      );
    return netOp(() => this.#ctx.net.removeNetwork(net.id));
  }

  /** Removes every user network that no container (running or not) names. */
  async prune(): Promise<string[]> {
    const gone: string[] = [];
    for (const n of this.#ctx.net.networks.list()) {
      if (n.name === DEFAULT_NETWORK || this.#users(n.name).length) continue;
      if (this.#ctx.net.attachments({ networkId: n.id }).length) continue;
      await netOp(() => this.#ctx.net.removeNetwork(n.id));
      gone.push(n.name);
    }
    return gone;
  }

  /**
   * Takes down the host side of every network no container is attached to, the default
   * `bridge` network's included: bridges, the rules that name them, the shared chains once
   * unused. Networks stay (as data) and get their bridge again when a container next joins.
   * A network's bridge otherwise lives as long as the network, as docker0 does; this is the
   * explicit call that removes it (tests, before removing a data root). Returns the bridges.
   */
  down(): Promise<string[]> {
    return netOp(() => this.#ctx.net.down());
  }

  /**
   * docker network connect: the container joins the network at its next start, and now if it
   * runs (its peers' /etc/hosts and its own learn the new names).
   */
  async connect(netRef: string, containerRef: string, endpoint: EndpointConfig = {}): Promise<void> {
    const predefined = this.#mode(netRef);
    if (predefined)
      throw new EngineError(
        'Forbidden',
        `container cannot be disconnected from ${predefined} network or connected to ${predefined} network`,
      );
    const net = await this.#find(netRef);
    const r = getRecord(this.#ctx, containerRef);
    const mode = r.hostConfig.network?.mode ?? 'host';
    if (!ownsSandbox(r) || mode === 'none')
      throw new EngineError(
        'Conflict',
        `container ${r.name} is in network mode ${mode}: it cannot join other networks`,
      );
    if (r.hostConfig.network?.networks[net.name])
      throw new EngineError('Conflict', `container ${r.name} is already attached to network ${net.name}`);
    if (endpoint.ip && net.name === DEFAULT_NETWORK)
      throw new EngineError(
        'InvalidArgument',
        'user specified IP address is supported on user defined networks only',
      );
    if (r.state.status === 'running') {
      await netOp(() => this.#ctx.net.connect(r.id, r.name, net.name, endpoint));
      refreshHosts(this.#ctx, [r.id, ...peersOf(this.#ctx, r.id)]);
    }
    this.#ctx.records.update(r.id, (x) => {
      if (x.hostConfig.network) x.hostConfig.network.networks[net.name] = endpoint;
    });
  }

  /** docker network disconnect: now if it runs, and for its later starts. */
  async disconnect(netRef: string, containerRef: string): Promise<void> {
    const predefined = this.#mode(netRef);
    if (predefined)
      throw new EngineError(
        'Forbidden',
        `container cannot be disconnected from ${predefined} network or connected to ${predefined} network`,
      );
    const net = await this.#find(netRef);
    const r = getRecord(this.#ctx, containerRef);
    const attached =
      r.state.status === 'running' && ownsSandbox(r)
        ? this.#ctx.net.attachments({ containerId: r.id }).some((a) => a.networkId === net.id)
        : false;
    if (!r.hostConfig.network?.networks[net.name] && !attached)
      throw new EngineError('NotFound', `container ${r.name} is not connected to network ${net.name}`);
    if (attached) {
      const peers = peersOf(this.#ctx, r.id);
      await netOp(() => this.#ctx.net.disconnect(r.id, net.id));
      refreshHosts(this.#ctx, [r.id, ...peers]);
    }
    this.#ctx.records.update(r.id, (x) => {
      if (x.hostConfig.network) delete x.hostConfig.network.networks[net.name];
    });
  }

  /** A container's network settings (inspect's NetworkSettings). */
  settingsOf(r: ContainerRecord): NetworkSettingsView {
    const mode = r.hostConfig.network?.mode ?? 'host';
    const out: NetworkSettingsView = { mode, networks: {}, ports: [] };
    if (mode === 'host' || r.state.status !== 'running') return out;
    for (const a of this.#ctx.net.attachments({ containerId: netOwner(r) })) {
      const gateway = this.#ctx.net.networks.find(a.networkId)?.gateway ?? null;
      out.networks[a.network] = { ip: a.ip ?? null, mac: a.mac ?? null, gateway, aliases: a.aliases };
      out.ports.push(...a.ports);
    }
    return out;
  }

  async #find(ref: string): Promise<NetworkRecord> {
    if (ref === DEFAULT_NETWORK) return netOp(() => this.#ctx.net.defaultNetwork());
    return netOp(() => this.#ctx.net.networks.get(ref));
  }

  /** The containers whose configuration names the network. */
  #users(name: string): ContainerRecord[] {
    const out: ContainerRecord[] = [];
    for (const id of this.#ctx.records.ids()) {
      const r = this.#ctx.records.read(id);
      if (r?.hostConfig.network?.networks[name]) out.push(r);
    }
    return out;
  }
}
