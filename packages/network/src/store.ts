import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { NetworkError } from './errors.js';
import { entries, join, jsonName, readJson, stripJson, writeJson } from './files.js';
import { contains, formatCidr, intToIp, parseCidr } from './subnet.js';
import type { NetworkRecord } from './types.js';

/** The default network's name, and the names that are modes rather than networks. */
export const DEFAULT_NETWORK = 'bridge';
export const RESERVED = new Set(['none', 'host', 'default']);

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

export interface CreateNetworkOptions {
  name: string;
  /** Given, or the first free one of the pool. */
  subnet?: string;
  gateway?: string;
  internal?: boolean;
  labels?: Record<string, string>;
  /** The bridge's name; `crl-` and 11 hex digits of the id when not given. */
  bridge?: string;
}

/** Named networks as data: one JSON file per network under `dir`. */
export class NetworkStore {
  constructor(readonly dir: string) {}

  private file(name: string): string {
    if (!NAME.test(name)) throw new NetworkError('InvalidArgument', `invalid network name "${name}"`);
    return join(this.dir, jsonName(name));
  }

  list(): NetworkRecord[] {
    const out: NetworkRecord[] = [];
    for (const n of entries(this.dir)) {
      const name = stripJson(n);
      const rec = name && readJson<NetworkRecord>(join(this.dir, n));
      if (rec) out.push(rec);
    }
    return out.sort((a, b) => a.name.localeCompare(b.name));
  }

  /** By name, full id or a unique id prefix, as Docker finds networks. */
  find(ref: string): NetworkRecord | undefined {
    if (NAME.test(ref)) {
      const byName = readJson<NetworkRecord>(this.file(ref));
      if (byName) return byName;
    }
    const byId = this.list().filter((n) => n.id.startsWith(ref));
    if (byId.length > 1) throw new NetworkError('Conflict', `network id prefix ${ref} is ambiguous`);
    return byId[0];
  }

  get(ref: string): NetworkRecord {
    const n = this.find(ref);
    if (!n) throw new NetworkError('NotFound', `network ${ref} not found`);
    return n;
  }

  /** Validates and stores a new network; `subnet` must already be chosen. */
  create(opts: CreateNetworkOptions & { subnet: string }): NetworkRecord {
    if (RESERVED.has(opts.name))
      throw new NetworkError(
        'InvalidArgument',
        `${opts.name} is a pre-defined network mode and cannot be created`,
      );
    // By name alone, as Docker: a name that is some network's id prefix is still free.
    if (readJson<NetworkRecord>(this.file(opts.name)))
      throw new NetworkError('Conflict', `network with name ${opts.name} already exists`);
    const subnet = parseCidr(opts.subnet);
    const gateway = opts.gateway ?? intToIp(subnet.base + 1);
    if (!contains(subnet, gateway) || gateway === intToIp(subnet.base))
      throw new NetworkError('InvalidArgument', `gateway ${gateway} is not a host address of ${opts.subnet}`);
    const clash = this.list().find((n) => {
      const o = parseCidr(n.subnet);
      return contains(o, intToIp(subnet.base)) || contains(subnet, intToIp(o.base));
    });
    if (clash)
      throw new NetworkError(
        'Conflict',
        `subnet ${opts.subnet} overlaps network ${clash.name} (${clash.subnet})`,
      );
    const id = randomBytes(32).toString('hex');
    const bridge = opts.bridge ?? `crl-${id.slice(0, 11)}`;
    if (bridge.length > 15 || !/^[A-Za-z0-9_.-]+$/.test(bridge))
      throw new NetworkError('InvalidArgument', `invalid bridge name ${bridge}`);
    const rec: NetworkRecord = {
      id,
      name: opts.name,
      driver: 'bridge',
      bridge,
      subnet: formatCidr(subnet),
      gateway,
      internal: opts.internal ?? false,
      labels: opts.labels ?? {},
      created: new Date().toISOString(),
    };
    writeJson(this.file(rec.name), rec);
    return rec;
  }

  remove(name: string): void {
    rmSync(this.file(name), { force: true });
  }
}
