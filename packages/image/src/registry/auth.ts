import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { RegistryError } from './errors.js';
import { DOCKER_HUB, DOCKER_HUB_AUTH_KEY } from './hosts.js';

export interface Credentials {
  username: string;
  password: string;
  /** An OAuth2 refresh token (`identitytoken` in config.json), traded for access tokens instead of the password. */
  identityToken?: string;
  /** A bearer token for the registry itself (Docker's `registrytoken`), sent as it is. */
  registryToken?: string;
}

/** One parsed WWW-Authenticate challenge. */
export interface Challenge {
  scheme: 'basic' | 'bearer';
  params: Record<string, string>;
}

/**
 * Parses a WWW-Authenticate header value such as
 * `Bearer realm="https://auth.example/token",service="registry",scope="repository:a:pull"`.
 * Returns the first Bearer or Basic challenge, or undefined when there is none.
 */
export function parseChallenge(header: string | undefined): Challenge | undefined {
  if (!header) return undefined;
  const re = /\s*([A-Za-z][\w-]*)(?:\s+|$)/y;
  let pos = 0;
  const found: Challenge[] = [];
  while (pos < header.length) {
    re.lastIndex = pos;
    const m = re.exec(header);
    if (!m) break;
    const scheme = m[1]!.toLowerCase();
    pos = re.lastIndex;
    const params: Record<string, string> = {};
    const param = /\s*([\w.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*(,)?/y;
    for (;;) {
      param.lastIndex = pos;
      const p = param.exec(header);
      // A token followed by a space and no "=" starts the next challenge.
      if (!p) break;
      params[p[1]!.toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : p[3]!;
      pos = param.lastIndex;
      if (!p[4]) break;
    }
    if (scheme === 'bearer' || scheme === 'basic') found.push({ scheme, params });
    while (pos < header.length && (header[pos] === ',' || header[pos] === ' ')) pos++;
  }
  return found.find((c) => c.scheme === 'bearer') ?? found[0];
}

/** Where Docker keeps its client config: `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`. */
export function defaultDockerConfigPath(): string {
  const dir = process.env['DOCKER_CONFIG'] || path.join(os.homedir(), '.docker');
  return path.join(dir, 'config.json');
}

/** The config.json key for a registry: Docker Hub uses its historic index URL, others the bare host. */
export function authKey(registry: string): string {
  return registry === DOCKER_HUB ? DOCKER_HUB_AUTH_KEY : registry;
}

/** Reduces an `auths` key (`https://host/v1/`, `http://host`, `host`) to a host, Docker Hub to docker.io. */
function keyHost(key: string): string {
  const host = key
    .replace(/^[a-z]+:\/\//i, '')
    .split('/', 1)[0]!
    .toLowerCase();
  return host === 'index.docker.io' || host === 'registry-1.docker.io' || host === DOCKER_HUB
    ? DOCKER_HUB
    : host;
}

interface AuthEntry {
  auth?: string;
  username?: string;
  password?: string;
  identitytoken?: string;
}

type DockerConfig = Record<string, unknown> & {
  auths?: Record<string, AuthEntry>;
  credsStore?: string;
  credHelpers?: Record<string, string>;
};

/**
 * Credentials in a Docker-style config.json: `auths` entries with base64 `auth`
 * (or `username`/`password`), and credential helpers named by `credHelpers` / `credsStore`.
 */
export class DockerCredentialStore {
  constructor(readonly configPath: string = defaultDockerConfigPath()) {}

  private async read(): Promise<DockerConfig> {
    let text: string;
    try {
      text = await fs.readFile(this.configPath, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return {};
      throw e;
    }
    if (text.trim() === '') return {};
    try {
      const json = JSON.parse(text) as unknown;
      if (!json || typeof json !== 'object' || Array.isArray(json)) throw new Error('not a JSON object');
      return json as DockerConfig;
    } catch (e) {
      throw new RegistryError(
        'INVALID_CONFIG',
        `cannot read credentials: ${this.configPath} is not valid JSON (${(e as Error).message}); fix or remove it`,
      );
    }
  }

  /** The credentials stored for a registry, or undefined. */
  async get(registry: string): Promise<Credentials | undefined> {
    const config = await this.read();
    const helper =
      config.credHelpers?.[authKey(registry)] ?? config.credHelpers?.[registry] ?? config.credsStore;
    for (const [key, entry] of Object.entries(config.auths ?? {})) {
      if (keyHost(key) !== registry.toLowerCase()) continue;
      if (entry.identitytoken) {
        const user = entry.auth
          ? Buffer.from(entry.auth, 'base64').toString('utf8').split(':', 1)[0]
          : undefined;
        return {
          username: user || entry.username || '<token>',
          password: '',
          identityToken: entry.identitytoken,
        };
      }
      if (entry.auth) {
        const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
        const colon = decoded.indexOf(':');
        if (colon < 0) {
          throw new RegistryError(
            'UNAUTHORIZED',
            `the "auth" entry for ${key} in ${this.configPath} is not base64 of user:password; log in to ${registry} again`,
            { host: registry },
          );
        }
        return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
      }
      if (entry.username && entry.password) return { username: entry.username, password: entry.password };
    }
    if (helper) return runCredentialHelper(helper, authKey(registry));
    return undefined;
  }

  /** Stores credentials for a registry (mode 0600, written to a temp file and renamed). */
  async set(registry: string, creds: Credentials): Promise<void> {
    const config = await this.read();
    const auths: Record<string, AuthEntry> = { ...(config.auths ?? {}) };
    for (const key of Object.keys(auths)) if (keyHost(key) === registry.toLowerCase()) delete auths[key];
    auths[authKey(registry)] = {
      auth: Buffer.from(`${creds.username}:${creds.password}`).toString('base64'),
    };
    await this.write({ ...config, auths });
  }

  /** Removes a registry's stored credentials; true when there were some. */
  async delete(registry: string): Promise<boolean> {
    const config = await this.read();
    const auths: Record<string, AuthEntry> = { ...(config.auths ?? {}) };
    let found = false;
    for (const key of Object.keys(auths)) {
      if (keyHost(key) === registry.toLowerCase()) {
        delete auths[key];
        found = true;
      }
    }
    if (found) await this.write({ ...config, auths });
    return found;
  }

  private async write(config: DockerConfig): Promise<void> {
    const dir = path.dirname(this.configPath);
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    const tmp = path.join(dir, `.${path.basename(this.configPath)}.${randomBytes(6).toString('hex')}.tmp`);
    const fh = await fs.open(tmp, 'wx', 0o600);
    try {
      await fh.writeFile(`${JSON.stringify(config, null, '\t')}\n`);
      await fh.sync();
    } finally {
      await fh.close();
    }
    try {
      await fs.rename(tmp, this.configPath);
    } catch (e) {
      await fs.rm(tmp, { force: true });
      throw e;
    }
  }
}

/** Asks `docker-credential-NAME get` for a server's credentials, as Docker does. */
function runCredentialHelper(name: string, server: string): Promise<Credentials | undefined> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      `docker-credential-${name}`,
      ['get'],
      { timeout: 30_000 },
      (err, stdout, stderr) => {
        if (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
            reject(
              new RegistryError(
                'UNAUTHORIZED',
                `credential helper docker-credential-${name} is configured but not on PATH; install it or remove it from config.json`,
              ),
            );
            return;
          }
          // Helpers answer "credentials not found" with a failure exit.
          if (/not found/i.test(`${stdout}${stderr}`)) resolve(undefined);
          else
            reject(
              new RegistryError(
                'UNAUTHORIZED',
                `docker-credential-${name} get failed: ${stderr.trim() || err.message}`,
              ),
            );
          return;
        }
        try {
          const out = JSON.parse(stdout) as { Username?: string; Secret?: string };
          if (!out.Username || !out.Secret) resolve(undefined);
          // Helpers hand out refresh tokens under the user name "<token>".
          else if (out.Username === '<token>')
            resolve({ username: out.Username, password: '', identityToken: out.Secret });
          else resolve({ username: out.Username, password: out.Secret });
        } catch {
          reject(new RegistryError('UNAUTHORIZED', `docker-credential-${name} get did not answer with JSON`));
        }
      },
    );
    child.stdin?.end(server);
  });
}
