import type { NetworkDetails } from '@corral/engine';
import { bad, filtersParam, jsonBody, sendEmpty, sendJson } from '../http.js';
import type { Route } from '../server.js';

const NAME = '([^/]+)';

type Net = Omit<NetworkDetails, 'containers'> & { containers?: NetworkDetails['containers'] };

/** Docker's NetworkResource for a network of engine.networks (containers only for inspect). */
function resource(n: Net) {
  const prefix = n.subnet.split('/')[1];
  return {
    Name: n.name,
    Id: n.id,
    Created: n.created,
    Scope: 'local',
    Driver: n.driver,
    EnableIPv6: false,
    IPAM: {
      Driver: 'default',
      Options: null,
      Config: n.subnet ? [{ Subnet: n.subnet, Gateway: n.gateway }] : [],
    },
    Internal: n.internal,
    Attachable: false,
    Ingress: false,
    ConfigFrom: { Network: '' },
    ConfigOnly: false,
    Containers: Object.fromEntries(
      (n.containers ?? []).map((c) => [
        c.id,
        {
          Name: c.name,
          EndpointID: '',
          MacAddress: c.mac ?? '',
          IPv4Address: c.ip ? `${c.ip}/${prefix}` : '',
          IPv6Address: '',
        },
      ]),
    ),
    Options: n.bridge ? { 'com.docker.network.bridge.name': n.bridge } : {},
    Labels: n.labels ?? {},
  };
}

/** null, false, '', an empty object or list: what a client sends for a field it leaves alone. */
const unset = (v: unknown): boolean =>
  v === undefined ||
  v === null ||
  v === false ||
  v === '' ||
  (typeof v === 'object' && Object.values(v as object).every(unset));

const str = (v: unknown, field: string): string | undefined => {
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string') throw bad(`${field} must be a string`);
  return v;
};

/** Docker's /networks endpoints over engine.networks (bridge networks; host and none listed). */
export const networkRoutes: Route[] = [
  [
    'GET',
    /^\/networks$/,
    async (call, d) => {
      const f = filtersParam(call.query);
      const nets = (await d.engine.networks.list()).filter(
        (n) =>
          (!f.name || f.name.some((x) => n.name.includes(x))) &&
          (!f.id || f.id.some((x) => n.id.startsWith(x))) &&
          (!f.driver || f.driver.includes(n.driver)),
      );
      sendJson(call, 200, nets.map(resource));
    },
  ],
  [
    'POST',
    /^\/networks\/create$/,
    async (call, d) => {
      const body = await jsonBody(call);
      // The docker CLI sends every field of its request, most empty: a field that asks for
      // something corral does not do is refused, naming it; an empty one is not.
      const known = ['Name', 'Driver', 'Internal', 'IPAM', 'Labels', 'CheckDuplicate'];
      for (const [k, v] of Object.entries(body))
        if (
          !known.includes(k) &&
          !unset(v) &&
          !(k === 'Scope' && v === 'local') &&
          !(k === 'EnableIPv4' && v === true)
        )
          throw bad(`${k} is not supported by corral`);
      const driver = str(body.Driver, 'Driver') ?? 'bridge';
      if (driver !== 'bridge') throw bad(`network driver ${driver} is not supported: only bridge`);
      const name = str(body.Name, 'Name');
      if (!name) throw bad('Name is required');
      const ipam = (body.IPAM ?? {}) as { Config?: { Subnet?: string; Gateway?: string }[] };
      const configs = ipam.Config ?? [];
      if (configs.length > 1) throw bad('corral networks take one IPAM config (one IPv4 subnet)');
      const net = await d.engine.networks.create({
        name,
        subnet: str(configs[0]?.Subnet, 'IPAM.Config.Subnet'),
        gateway: str(configs[0]?.Gateway, 'IPAM.Config.Gateway'),
        internal: body.Internal === true,
        labels: (body.Labels ?? {}) as Record<string, string>,
      });
      sendJson(call, 201, { Id: net.id, Warning: '' });
    },
  ],
  [
    'POST',
    /^\/networks\/prune$/,
    async (call, d) => {
      sendJson(call, 200, { NetworksDeleted: await d.engine.networks.prune() });
    },
  ],
  [
    'GET',
    new RegExp(`^/networks/${NAME}$`),
    async (call, d) => {
      sendJson(call, 200, resource(await d.engine.networks.inspect(call.params[0])));
    },
  ],
  [
    'DELETE',
    new RegExp(`^/networks/${NAME}$`),
    async (call, d) => {
      await d.engine.networks.remove(call.params[0]);
      sendEmpty(call);
    },
  ],
  [
    'POST',
    new RegExp(`^/networks/${NAME}/connect$`),
    async (call, d) => {
      const body = await jsonBody(call);
      const container = str(body.Container, 'Container');
      if (!container) throw bad('Container is required');
      const ep = (body.EndpointConfig ?? {}) as {
        IPAMConfig?: { IPv4Address?: string } | null;
        Aliases?: string[] | null;
      };
      const ip = str(ep.IPAMConfig?.IPv4Address, 'EndpointConfig.IPAMConfig.IPv4Address');
      await d.engine.networks.connect(call.params[0], container, {
        ...(ip ? { ip } : {}),
        ...(ep.Aliases?.length ? { aliases: ep.Aliases } : {}),
      });
      sendEmpty(call, 200);
    },
  ],
  [
    'POST',
    new RegExp(`^/networks/${NAME}/disconnect$`),
    async (call, d) => {
      const body = await jsonBody(call);
      const container = str(body.Container, 'Container');
      if (!container) throw bad('Container is required');
      await d.engine.networks.disconnect(call.params[0], container);
      sendEmpty(call, 200);
    },
  ],
];
