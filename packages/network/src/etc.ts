/**
 * The contents of a container's /etc/hosts, /etc/hostname and /etc/resolv.conf, as Docker
 * writes them. Only the contents: the engine writes them inside the container's root with
 * its in-root helpers, never through a host path.
 */

export interface HostsEntry {
  ip: string;
  names: string[];
}

/** Docker's /etc/hosts: the loopback block, --add-host entries, the container itself, then its peers. */
export function hostsFile(opts: {
  hostname: string;
  /** The container's addresses (one per network); none for --network none. */
  ips?: readonly string[];
  /** --add-host NAME:IP */
  extra?: readonly HostsEntry[];
  /** Other containers of its user networks, by name (kept current by the engine). */
  peers?: readonly HostsEntry[];
}): string {
  const lines = [
    '127.0.0.1\tlocalhost',
    '::1\tlocalhost ip6-localhost ip6-loopback',
    'fe00::0\tip6-localnet',
    'ff00::0\tip6-mcastprefix',
    'ff02::1\tip6-allnodes',
    'ff02::2\tip6-allrouters',
  ];
  for (const e of opts.extra ?? []) lines.push(`${e.ip}\t${e.names.join(' ')}`);
  for (const ip of opts.ips ?? []) lines.push(`${ip}\t${opts.hostname}`);
  for (const e of opts.peers ?? []) lines.push(`${e.ip}\t${e.names.join(' ')}`);
  return `${lines.join('\n')}\n`;
}

export function hostnameFile(hostname: string): string {
  return `${hostname}\n`;
}

/** Docker's fallback when no usable resolver is left (only in a file; corral sends nothing). */
export const DEFAULT_DNS = ['8.8.8.8', '8.8.4.4'];

const isLoopback = (ip: string) => /^127\./.test(ip) || ip === '::1' || ip === '0:0:0:0:0:0:0:1';

/**
 * Docker's resolv.conf. Without --dns, --dns-search or --dns-option: the host's file as it is
 * (comments and order kept), less its loopback resolvers (they would point at the container's
 * own loopback) and IPv6 ones (corral's networks have no IPv6), with Docker's defaults when no
 * resolver is left. With any of them: a new file of `search`, `nameserver` and `options` lines,
 * each taken from the option when given and from the host's file otherwise (its loopback
 * resolvers still left out).
 */
export function resolvConf(
  host: string,
  opts: { dns?: readonly string[]; search?: readonly string[]; options?: readonly string[] } = {},
): string {
  const lines = host.split('\n');
  const server = (line: string) => {
    const [key, value] = line.trim().split(/\s+/);
    return key === 'nameserver' && value ? value.split('%')[0] : undefined;
  };
  const usable = (ip: string) => !isLoopback(ip) && !ip.includes(':');
  if (!opts.dns?.length && !opts.search?.length && !opts.options?.length) {
    const kept = lines.filter((l) => {
      const ip = server(l);
      return ip === undefined || usable(ip);
    });
    let out = kept.join('\n').replace(/\n*$/, '\n');
    if (!kept.some((l) => server(l) !== undefined)) {
      if (out === '\n') out = '';
      out += DEFAULT_DNS.map((d) => `nameserver ${d}\n`).join('');
    }
    return out;
  }
  let servers: string[] = [];
  let search: string[] = [];
  let options: string[] = [];
  for (const line of lines) {
    const [key, ...vals] = line.trim().split(/\s+/);
    const ip = server(line);
    if (ip !== undefined && usable(ip)) servers.push(vals[0]);
    else if (key === 'search' || key === 'domain') search = vals;
    else if (key === 'options') options.push(...vals);
  }
  if (opts.dns?.length) servers = [...opts.dns];
  else if (servers.length === 0) servers = [...DEFAULT_DNS];
  if (opts.search?.length) search = opts.search.filter((s) => s !== '.');
  if (opts.options?.length) options = [...opts.options];
  const out: string[] = [];
  if (search.length) out.push(`search ${search.join(' ')}`);
  for (const s of servers) out.push(`nameserver ${s}`);
  if (options.length) out.push(`options ${options.join(' ')}`);
  return `${out.join('\n')}\n`;
}
