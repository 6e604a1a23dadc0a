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
 * Docker's resolv.conf: the host's, with loopback resolvers taken out (they would point at
 * the container's own loopback); --dns, --dns-search and --dns-option replace the host's
 * nameserver, search and options lines.
 */
export function resolvConf(
  host: string,
  opts: { dns?: readonly string[]; search?: readonly string[]; options?: readonly string[] } = {},
): string {
  const keep: string[] = [];
  let servers: string[] = [];
  let search: string[] = [];
  let options: string[] = [];
  for (const raw of host.split('\n')) {
    const line = raw.trim();
    const [key, ...vals] = line.split(/\s+/);
    if (key === 'nameserver') {
      if (vals[0] && !isLoopback(vals[0].split('%')[0])) servers.push(vals[0]);
    } else if (key === 'search' || key === 'domain') search = vals;
    else if (key === 'options') options.push(...vals);
    else if (line.startsWith('#') || line.startsWith(';') || line === '') continue;
    else keep.push(line);
  }
  if (opts.dns?.length) servers = [...opts.dns];
  else if (servers.length === 0) servers = [...DEFAULT_DNS];
  if (opts.search?.length) search = opts.search.filter((s) => s !== '.');
  if (opts.options?.length) options = [...opts.options];
  const out = [...keep];
  if (search.length) out.push(`search ${search.join(' ')}`);
  for (const s of servers) out.push(`nameserver ${s}`);
  if (options.length) out.push(`options ${options.join(' ')}`);
  return `${out.join('\n')}\n`;
}
