import { NetworkError } from './errors.js';

/** An IPv4 CIDR as numbers. */
export interface Cidr {
  base: number;
  prefix: number;
}

export function ipToInt(ip: string): number {
  const p = ip.split('.').map(Number);
  if (p.length !== 4 || p.some((n) => !Number.isInteger(n) || n < 0 || n > 255))
    throw new TypeError(`bad IPv4 ${ip}`);
  return ((p[0] << 24) | (p[1] << 16) | (p[2] << 8) | p[3]) >>> 0;
}

export function intToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

const mask = (prefix: number) => (prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0);

export function parseCidr(s: string): Cidr {
  const m = /^(\d+\.\d+\.\d+\.\d+)\/(\d+)$/.exec(s);
  if (!m || Number(m[2]) > 30 || Number(m[2]) < 8)
    throw new NetworkError('InvalidArgument', `invalid subnet ${s}: expected an IPv4 CIDR from /8 to /30`);
  const prefix = Number(m[2]);
  let base: number;
  try {
    base = ipToInt(m[1]);
  } catch {
    throw new NetworkError('InvalidArgument', `invalid subnet ${s}`);
  }
  return { base: (base & mask(prefix)) >>> 0, prefix };
}

/** A route's destination (any prefix, /32 when none). */
export function parseRoute(s: string): Cidr {
  const [ip, len] = s.split('/');
  const prefix = len === undefined ? 32 : Number(len);
  return { base: (ipToInt(ip) & mask(prefix)) >>> 0, prefix };
}

export const formatCidr = (c: Cidr) => `${intToIp(c.base)}/${c.prefix}`;

export function contains(c: Cidr, ip: string): boolean {
  return (ipToInt(ip) & mask(c.prefix)) >>> 0 === c.base;
}

export function overlaps(a: Cidr, b: Cidr): boolean {
  const p = Math.min(a.prefix, b.prefix);
  return (a.base & mask(p)) >>> 0 === (b.base & mask(p)) >>> 0;
}

/** The first free /`size` of `pool` that overlaps none of `used` (the host's routes, other networks). */
export function allocateSubnet(pool: string, size: number, used: readonly string[]): string {
  const p = parseCidr(pool);
  const taken = used.map(parseRoute);
  const step = 2 ** (32 - size);
  for (let b = p.base; b < p.base + 2 ** (32 - p.prefix); b += step) {
    const c = { base: b >>> 0, prefix: size };
    if (!taken.some((t) => overlaps(t, c))) return formatCidr(c);
  }
  throw new NetworkError(
    'Unavailable',
    `no free /${size} subnet left in ${pool}: remove unused networks (network prune)`,
  );
}
