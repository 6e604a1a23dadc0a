// A container's network options, from the front-end's strings to what its record keeps: checked
// at create, so that a bad -p, --add-host or --network fails before anything is made.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { hostname as osHostname } from 'node:os';
import { join } from 'node:path';
import type { ContainerConfig } from '@corral/image';
import {
  DEFAULT_NETWORK,
  type HostsEntry,
  NetworkError,
  NetworkManager,
  type PortMapping,
  parseNetworkMode,
  parsePort,
} from '@corral/network';
import { EngineError } from './errors.js';
import type { ContainerRecord } from './records.js';

/**
 * dockerd's host switches, as engine configuration (`Engine.open({ network })`). corral is
 * daemonless: the CLI, each container's keeper (which restarts containers) and corrald all
 * open the same data root, so the switches live with it (ROOT/network/settings.json). Values
 * given here are kept there for every later process on the root; a process that gives none
 * (a keeper, a plain CLI command) uses what was kept, or the defaults.
 */
export interface NetworkSettings {
  /** Add iptables rules (published ports, the route_localnet guard, isolation); default true. */
  iptables?: boolean;
  /** Set net.ipv4.ip_forward=1 (never cleared); default false. */
  ipForward?: boolean;
  /** Masquerade outbound traffic of bridges; default false. */
  ipMasq?: boolean;
  /** Where networks' subnets come from (default: a /16 of 10.213-10.244 that the root picks). */
  pool?: string;
}

/** One network a container joins: Docker's EndpointSettings that corral keeps. */
export interface EndpointConfig {
  ip?: string;
  mac?: string;
  aliases?: string[];
}

/** A container's network configuration, kept in its record (hostConfig.network). */
export interface ContainerNetwork {
  /** `bridge`, `none`, `host`, `container:ID`, or a user network's name. */
  mode: string;
  /** The networks it joins at start, by name (bridge mode: `bridge`). */
  networks: Record<string, EndpointConfig>;
  /** Ports to publish (hostPort 0: a free one at each start). */
  ports: PortMapping[];
  extraHosts: HostsEntry[];
  dns: string[];
  dnsSearch: string[];
  dnsOptions: string[];
}

/** What `create` takes about the network (Docker's flags). */
export interface NetworkCreateOptions {
  /** `--network`: bridge (default), none, host, container:NAME, or a network's name. */
  network?: string;
  /** `-p [IP:]HOST:CTR[/tcp|udp]` or `-p CTR`. */
  publish?: string[];
  /** `-P`: every port the image EXPOSEs, on free host ports. */
  publishAll?: boolean;
  ip?: string;
  macAddress?: string;
  /** `--network-alias` on a user network. */
  networkAliases?: string[];
  /** `--add-host NAME:IP`. */
  addHost?: string[];
  dns?: string[];
  dnsSearch?: string[];
  dnsOptions?: string[];
}

/** The network library's errors as the engine's (their kind kept). */
export function fromNetwork(e: unknown, prefix = ''): unknown {
  return e instanceof NetworkError
    ? new EngineError(e.kind, `${prefix}${e.message}`, { repair: e.repair })
    : e instanceof Error && prefix
      ? new EngineError('CannotStart', `${prefix}${e.message}`)
      : e;
}

export async function netOp<T>(fn: () => Promise<T> | T, prefix = ''): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw fromNetwork(e, prefix);
  }
}

const hash = (s: string) => createHash('sha256').update(s).digest('hex');

/**
 * The engine's network manager under ROOT/network. The default data root keeps Docker-like
 * names (bridge corral0, pool 10.213.0.0/16); another root (a test's, a second engine's) gets
 * a bridge and a pool of its own, so that two engines on one host never share a bridge.
 */
export function networkManager(
  root: string,
  settings: NetworkSettings,
  isDefaultRoot: boolean,
): NetworkManager {
  const h = hash(root);
  return new NetworkManager({
    root: `${root}/network`,
    switches: keptSwitches(`${root}/network`, settings),
    pool:
      settings.pool ??
      (isDefaultRoot ? '10.213.0.0/16' : `10.${214 + (Number.parseInt(h.slice(0, 4), 16) % 31)}.0.0/16`),
    defaultBridge: isDefaultRoot ? 'corral0' : `crl-${h.slice(0, 11)}`,
  });
}

type Switches = { iptables?: boolean; ipForward?: boolean; ipMasq?: boolean };

/** The root's kept switches, with `given` ones put in their place (and kept, when they differ). */
function keptSwitches(dir: string, given: NetworkSettings): Switches {
  const file = join(dir, 'settings.json');
  let kept: Switches = {};
  try {
    const raw = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    for (const k of SWITCHES) if (typeof raw[k] === 'boolean') kept[k] = raw[k] as boolean;
  } catch {
    kept = {}; // none kept yet (or unreadable: the defaults, and the next given ones replace it)
  }
  const next: Switches = { ...kept };
  for (const k of SWITCHES) if (typeof given[k] === 'boolean') next[k] = given[k];
  if (SWITCHES.some((k) => next[k] !== kept[k])) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, `${JSON.stringify(next)}\n`, { mode: 0o600 });
    renameSync(tmp, file);
  }
  return next;
}

const SWITCHES = ['iptables', 'ipForward', 'ipMasq'] as const;

function parseExtraHost(s: string): HostsEntry {
  const i = s.indexOf(':');
  const name = s.slice(0, i);
  const ip = s.slice(i + 1).replace(/^\[(.*)\]$/, '$1');
  if (i <= 0 || !ip || !/^[0-9a-fA-F.:]+$/.test(ip))
    throw new EngineError('InvalidArgument', `invalid --add-host ${s}: use NAME:IP`);
  return { ip, names: [name] };
}

/** `-P`: the image's EXPOSEd ports (`80/tcp`, `53/udp`), each on a free host port. */
function exposedPorts(config: ContainerConfig): PortMapping[] {
  return Object.keys(config.ExposedPorts ?? {}).map((k) => parsePort(k));
}

/**
 * Checks the network options at create and returns what the record keeps. `container:NAME`
 * is resolved to the container's id (`resolve`); the hostname a mode implies is returned too.
 */
export function networkConfig(
  o: NetworkCreateOptions,
  image: ContainerConfig,
  resolve: (ref: string) => ContainerRecord,
): { network: ContainerNetwork; hostname?: string } {
  const mode = netSync(() => parseNetworkMode(o.network ?? 'bridge'));
  const ports = netSync(() => [
    ...(o.publish ?? []).map(parsePort),
    ...(o.publishAll ? exposedPorts(image) : []),
  ]);
  const endpoint: EndpointConfig = {
    ...(o.ip ? { ip: o.ip } : {}),
    ...(o.macAddress ? { mac: o.macAddress } : {}),
    ...(o.networkAliases?.length ? { aliases: [...o.networkAliases] } : {}),
  };
  const base: ContainerNetwork = {
    mode: mode.kind === 'network' ? mode.network : mode.kind,
    networks: {},
    ports: [],
    extraHosts: (o.addHost ?? []).map(parseExtraHost),
    dns: [...(o.dns ?? [])],
    dnsSearch: [...(o.dnsSearch ?? [])],
    dnsOptions: [...(o.dnsOptions ?? [])],
  };
  if (o.ip && mode.kind !== 'network')
    throw new EngineError(
      'InvalidArgument',
      'user specified IP address is supported on user defined networks only',
    );
  if (o.networkAliases?.length && mode.kind !== 'network')
    throw new EngineError(
      'InvalidArgument',
      'network-scoped aliases are supported for user-defined networks only',
    );
  switch (mode.kind) {
    case 'host':
    case 'none':
      // Docker's rule: published ports are discarded in host mode (and mean nothing in none).
      if (o.macAddress)
        throw new EngineError('InvalidArgument', `--mac-address has no use with --network ${mode.kind}`);
      return { network: base, ...(mode.kind === 'host' ? { hostname: osHostname() } : {}) };
    case 'container': {
      if (ports.length || o.macAddress || o.dns?.length || o.addHost?.length)
        throw new EngineError(
          'InvalidArgument',
          'conflicting options: --publish, --mac-address, --dns and --add-host cannot be used with --network container:NAME',
        );
      const other = resolve(mode.container);
      return { network: { ...base, mode: `container:${other.id}` }, hostname: other.config.hostname };
    }
    case 'bridge':
      return { network: { ...base, mode: 'bridge', networks: { [DEFAULT_NETWORK]: endpoint }, ports } };
    case 'network':
      return { network: { ...base, networks: { [mode.network]: endpoint }, ports } };
  }
}

function netSync<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw fromNetwork(e);
  }
}
