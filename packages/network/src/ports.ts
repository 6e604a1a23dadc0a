import { createSocket } from 'node:dgram';
import net, { isIPv4 } from 'node:net';
import { NetworkError } from './errors.js';
import type { PortMapping } from './types.js';

function port(s: string, what: string, spec: string, zeroOk = false): number {
  const n = Number(s);
  if (!/^\d+$/.test(s) || n > 65535 || (n === 0 && !zeroOk))
    throw new NetworkError('InvalidArgument', `invalid ${what} "${s}" in -p ${spec}`);
  return n;
}

/**
 * Parses Docker's `-p`: `[IP:]HOST:CTR[/tcp|udp]`, `IP::CTR` and `CTR` (the last two get a
 * free host port: hostPort 0 until `resolvePorts`). IPv4 host addresses only.
 */
export function parsePort(spec: string): PortMapping {
  let rest = spec;
  let protocol: 'tcp' | 'udp' = 'tcp';
  const slash = rest.lastIndexOf('/');
  if (slash >= 0) {
    const p = rest.slice(slash + 1).toLowerCase();
    if (p !== 'tcp' && p !== 'udp')
      throw new NetworkError('InvalidArgument', `invalid protocol "${p}" in -p ${spec}`);
    protocol = p;
    rest = rest.slice(0, slash);
  }
  const parts = rest.split(':');
  let hostIP = '';
  let host = '0';
  let ctr: string;
  if (parts.length === 1) [ctr] = parts;
  else if (parts.length === 2) [host, ctr] = parts;
  else if (parts.length === 3) [hostIP, host, ctr] = parts;
  else throw new NetworkError('InvalidArgument', `invalid -p ${spec}: expected [IP:]HOST:CTR[/tcp|udp]`);
  if (hostIP && !isIPv4(hostIP))
    throw new NetworkError('InvalidArgument', `invalid host address "${hostIP}" in -p ${spec}`);
  return {
    hostIP: hostIP || '0.0.0.0',
    hostPort: host === '' ? 0 : port(host, 'host port', spec, true),
    containerPort: port(ctr, 'container port', spec),
    protocol,
  };
}

/** Binds (and releases) the host port: an error when a host program holds it. */
function probe(m: PortMapping): Promise<number> {
  return new Promise((resolve, reject) => {
    const fail = (e: NodeJS.ErrnoException) =>
      reject(
        e.code === 'EADDRINUSE'
          ? new NetworkError('Conflict', `port ${m.hostIP}:${m.hostPort}/${m.protocol} is already allocated`)
          : new NetworkError(
              'InvalidArgument',
              `cannot publish on ${m.hostIP}:${m.hostPort}/${m.protocol}: ${e.message}`,
            ),
      );
    if (m.protocol === 'udp') {
      const s = createSocket('udp4');
      s.once('error', fail);
      s.bind(m.hostPort, m.hostIP, () => {
        const p = s.address().port;
        s.close(() => resolve(p));
      });
    } else {
      const s = net.createServer();
      s.once('error', fail);
      s.listen({ port: m.hostPort, host: m.hostIP, exclusive: true }, () => {
        const p = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(p));
      });
    }
  });
}

/**
 * Gives every `CTR`-only mapping a free host port, and refuses a host port that a host
 * program or another container (`taken`) already has.
 */
export async function resolvePorts(
  ports: readonly PortMapping[],
  taken: readonly PortMapping[] = [],
): Promise<PortMapping[]> {
  const out: PortMapping[] = [];
  for (const m of ports) {
    const clash = (o: PortMapping) =>
      o.protocol === m.protocol &&
      o.hostPort === m.hostPort &&
      (o.hostIP === m.hostIP || o.hostIP === '0.0.0.0' || m.hostIP === '0.0.0.0');
    if (m.hostPort !== 0 && [...taken, ...out].some(clash))
      throw new NetworkError('Conflict', `port ${m.hostIP}:${m.hostPort}/${m.protocol} is already allocated`);
    out.push({ ...m, hostPort: await probe(m) });
  }
  return out;
}

/** `0.0.0.0:8080->80/tcp, 127.0.0.1:9000->9000/udp`, as docker ps shows them. */
export function formatPorts(ports: readonly PortMapping[]): string {
  return ports.map((p) => `${p.hostIP}:${p.hostPort}->${p.containerPort}/${p.protocol}`).join(', ');
}
