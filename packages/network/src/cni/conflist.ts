import type { ConfList, HostSwitches, NetworkRecord } from '../types.js';

export const CNI_VERSION = '1.0.0';

/**
 * The configuration list corral writes for a bridge network: the bridge plugin with
 * host-local IPAM (leases in corral's own data folder), then portmap when corral may touch
 * iptables. No firewall plugin: its rules are per container (15 iptables runs on each ADD);
 * corral keeps the same forwarding and isolation rules per network instead (host.ts).
 *
 * The bridge plugin is not the gateway (`isGateway: false`): in gateway mode it turns on
 * net.ipv4.ip_forward on every ADD, which the ip-forward switch must be able to forbid.
 * corral gives the bridge its gateway address itself (see host.ts), and the containers get
 * their default route from IPAM.
 */
export function bridgeConflist(
  net: NetworkRecord,
  ipamDir: string,
  sw: HostSwitches,
  opts: { ports?: boolean } = {},
): ConfList {
  const plugins: ConfList['plugins'] = [
    {
      type: 'bridge',
      bridge: net.bridge,
      isGateway: false,
      ipMasq: sw.ipMasq && !net.internal,
      hairpinMode: true,
      capabilities: { ips: true, mac: true },
      ipam: {
        type: 'host-local',
        ranges: [[{ subnet: net.subnet, gateway: net.gateway }]],
        routes: net.internal ? [] : [{ dst: '0.0.0.0/0', gw: net.gateway }],
        dataDir: ipamDir,
      },
    },
  ];
  // portmap only for a container that publishes ports (the list is recorded and replayed on
  // DEL, and a container's ports never change): one plugin run less on ADD and on DEL.
  if (sw.iptables && opts.ports !== false) {
    plugins.push({ type: 'portmap', capabilities: { portMappings: true }, snat: true });
  }
  return { cniVersion: CNI_VERSION, name: net.name, plugins };
}

/** The loopback plugin's configuration: every private namespace gets `lo` up. */
export const loopbackConf = { cniVersion: CNI_VERSION, name: 'lo', type: 'loopback' };

/**
 * One plugin's stdin for a list, as the spec's "runtime semantics" say: the list's name and
 * version, the previous result, and runtimeConfig holding only the capabilities the plugin
 * declares.
 */
export function pluginConfig(
  list: ConfList,
  index: number,
  runtimeConfig: Record<string, unknown>,
  prevResult: unknown,
): Record<string, unknown> {
  const { capabilities, ...plugin } = list.plugins[index];
  const conf: Record<string, unknown> = { ...plugin, cniVersion: list.cniVersion, name: list.name };
  const rc: Record<string, unknown> = {};
  for (const [cap, on] of Object.entries(capabilities ?? {})) {
    if (on && runtimeConfig[cap] !== undefined) rc[cap] = runtimeConfig[cap];
  }
  if (Object.keys(rc).length > 0) conf.runtimeConfig = rc;
  if (prevResult !== undefined) conf.prevResult = prevResult;
  return conf;
}
