import { isIP } from 'node:net';

/** Docker Hub's name in references, and the host its API really answers on. */
export const DOCKER_HUB = 'docker.io';
export const DOCKER_HUB_API = 'registry-1.docker.io';
/** The key Docker uses for Docker Hub in config.json. */
export const DOCKER_HUB_AUTH_KEY = 'https://index.docker.io/v1/';

const DIGEST = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;
const HEX_LENGTH: Record<string, number> = { sha256: 64, sha512: 128 };

/** Checks a digest string: a known algorithm and the right number of lowercase hex digits. */
export function isValidDigest(digest: string): boolean {
  if (!DIGEST.test(digest)) return false;
  const [algorithm, hex] = digest.split(':', 2) as [string, string];
  const len = HEX_LENGTH[algorithm];
  return len !== undefined && hex.length === len && /^[a-f0-9]+$/.test(hex);
}

/** The host that answers the registry API for a registry name. */
export function registryApiHost(registry: string): string {
  return registry === DOCKER_HUB ? DOCKER_HUB_API : registry;
}

/** The host part without the port, brackets removed for IPv6. */
export function hostname(host: string): string {
  const bracket = /^\[([^\]]+)\]/.exec(host);
  if (bracket) return bracket[1]!;
  if (isIP(host) === 6) return host;
  const colon = host.lastIndexOf(':');
  return colon >= 0 ? host.slice(0, colon) : host;
}

/** True for registries on this machine: localhost, 127.0.0.0/8, ::1. */
export function isLoopbackHost(host: string): boolean {
  const name = hostname(host).toLowerCase();
  if (name === 'localhost' || name.endsWith('.localhost')) return true;
  if (isIP(name) === 4) return name.startsWith('127.');
  if (isIP(name) === 6) return name === '::1' || name === '0:0:0:0:0:0:0:1';
  return false;
}
