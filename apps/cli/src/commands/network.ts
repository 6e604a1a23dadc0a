import type { Command } from '../args.js';
import { table } from '../format.js';
import { dockerTime, HEADERS, isTemplate, renderRows } from '../templated.js';
import { bool, engine, list, str } from './common.js';
import { type EngineSub, engineCommandGroup } from './group.js';

export const port: Command = {
  name: 'port',
  usage: 'port CONTAINER [PRIVATE_PORT[/PROTO]]',
  description: "List a container's published ports, or the host address of one",
  flags: [],
  args: { min: 1, max: 2 },
  async run(a, ctx) {
    const [ref, want] = a.positionals;
    let ports = await (await engine(ctx)).ports(ref);
    if (want) {
      const [p, proto = 'tcp'] = want.split('/');
      ports = ports.filter((m) => String(m.containerPort) === p && m.protocol === proto);
      if (!ports.length) {
        console.error(`Error: No public port '${p}/${proto}' published for ${ref}`);
        return 1;
      }
      for (const m of ports) console.log(`${m.hostIP}:${m.hostPort}`);
      return 0;
    }
    for (const m of ports) console.log(`${m.containerPort}/${m.protocol} -> ${m.hostIP}:${m.hostPort}`);
    return 0;
  },
};

const labels = (values: string[]) =>
  Object.fromEntries(
    values.map((l) => [l.split('=')[0], l.includes('=') ? l.slice(l.indexOf('=') + 1) : '']),
  );

const subs: Record<string, EngineSub> = {
  create: {
    usage: 'network create [OPTIONS] NETWORK',
    description: 'Create a bridge network',
    flags: [
      { name: 'subnet', type: 'string', value: 'CIDR', description: 'IPv4 subnet (default: a free /24)' },
      { name: 'gateway', type: 'string', value: 'IP', description: 'The gateway (the bridge) address' },
      { name: 'internal', type: 'boolean', description: 'No route out of the network' },
      { name: 'driver', short: 'd', type: 'string', value: 'bridge', description: 'Only bridge' },
      { name: 'label', type: 'list', value: 'K=V', description: 'Set metadata' },
    ],
    args: { min: 1, max: 1 },
    async run(e, a) {
      const driver = str(a, 'driver') ?? 'bridge';
      if (driver !== 'bridge') {
        console.error(`corral: network driver ${driver} is not supported: only bridge`);
        return 1;
      }
      const net = await e.networks.create({
        name: a.positionals[0],
        subnet: str(a, 'subnet'),
        gateway: str(a, 'gateway'),
        internal: bool(a, 'internal'),
        labels: labels(list(a, 'label')),
      });
      console.log(net.id);
      return 0;
    },
  },
  ls: {
    usage: 'network ls [OPTIONS]',
    description: 'List networks',
    flags: [
      { name: 'quiet', short: 'q', type: 'boolean', description: 'Only display network IDs' },
      { name: 'no-trunc', type: 'boolean', description: "Don't truncate the IDs" },
      {
        name: 'format',
        type: 'string',
        value: 'string',
        description: "'table TEMPLATE' or a Go template ({{.Name}} ...)",
      },
    ],
    args: { min: 0, max: 0 },
    async run(e, a) {
      const nets = await e.networks.list();
      const id = (s: string) => (bool(a, 'no-trunc') ? s : s.slice(0, 12));
      const format = str(a, 'format');
      if (bool(a, 'quiet')) for (const n of nets) console.log(id(n.id));
      else if (isTemplate(format)) {
        const rows = nets.map((n) => ({
          CreatedAt: dockerTime(n.created),
          Driver: n.driver,
          ID: id(n.id),
          IPv6: 'false',
          Internal: String(n.internal),
          Labels: Object.entries(n.labels ?? {})
            .map(([k, v]) => `${k}=${v}`)
            .join(','),
          Name: n.name,
          Scope: 'local',
        }));
        const out = renderRows(format, rows, HEADERS.networks);
        if (out) console.log(out);
      } else
        console.log(
          table(
            ['NETWORK ID', 'NAME', 'DRIVER', 'SCOPE'],
            nets.map((n) => [id(n.id), n.name, n.driver, 'local']),
          ),
        );
      return 0;
    },
  },
  inspect: {
    usage: 'network inspect NETWORK [NETWORK...]',
    description: 'Show networks and the containers on them as JSON',
    flags: [],
    args: { min: 1 },
    async run(e, a) {
      const out = [];
      for (const ref of a.positionals) out.push(await e.networks.inspect(ref));
      console.log(JSON.stringify(out, null, 4));
      return 0;
    },
  },
  rm: {
    usage: 'network rm NETWORK [NETWORK...]',
    description: 'Remove networks that no container uses',
    flags: [],
    args: { min: 1 },
    async run(e, a) {
      let code = 0;
      for (const ref of a.positionals) {
        try {
          await e.networks.remove(ref);
          console.log(ref);
        } catch (err) {
          console.error(`Error response from daemon: ${(err as Error).message}`);
          code = 1;
        }
      }
      return code;
    },
  },
  connect: {
    usage: 'network connect [OPTIONS] NETWORK CONTAINER',
    description: 'Connect a container to a network',
    flags: [
      { name: 'ip', type: 'string', value: 'ADDR', description: 'IPv4 address' },
      { name: 'alias', type: 'list', value: 'NAME', description: 'Another name on the network' },
    ],
    args: { min: 2, max: 2 },
    async run(e, a) {
      const aliases = list(a, 'alias');
      await e.networks.connect(a.positionals[0], a.positionals[1], {
        ...(str(a, 'ip') ? { ip: str(a, 'ip') } : {}),
        ...(aliases.length ? { aliases } : {}),
      });
      return 0;
    },
  },
  disconnect: {
    usage: 'network disconnect [OPTIONS] NETWORK CONTAINER',
    description: 'Disconnect a container from a network',
    flags: [{ name: 'force', short: 'f', type: 'boolean', description: 'Accepted (as docker)' }],
    args: { min: 2, max: 2 },
    async run(e, a) {
      await e.networks.disconnect(a.positionals[0], a.positionals[1]);
      return 0;
    },
  },
  prune: {
    usage: 'network prune [OPTIONS]',
    description: 'Remove every user network no container uses',
    flags: [{ name: 'force', short: 'f', type: 'boolean', description: 'Do not prompt (corral never does)' }],
    args: { min: 0, max: 0 },
    async run(e) {
      const gone = await e.networks.prune();
      if (gone.length) console.log(`Deleted Networks:\n${gone.join('\n')}`);
      return 0;
    },
  },
  down: {
    usage: 'network down',
    description:
      'Remove the bridges and rules of every network no container is attached to (the default one too)',
    flags: [],
    args: { min: 0, max: 0 },
    async run(e) {
      for (const b of await e.networks.down()) console.log(b);
      return 0;
    },
  },
};

export const network = engineCommandGroup('network', 'Manage networks', subs);

export const networkCommands = [port, network];
