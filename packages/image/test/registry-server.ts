import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes, sign } from 'node:crypto';
import { promises as fs, readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import path from 'node:path';
import { freePort, tempDir } from '@corral/testkit';
import bcrypt from 'bcryptjs';

export interface TokenAuth {
  realm: string;
  service: string;
  issuer: string;
  certPath: string;
}

export interface RegistryOptions {
  /** htpasswd users (bcrypt entries made with bcryptjs). */
  users?: Record<string, string>;
  /** Bearer tokens from a token service (see startTokenServer). */
  token?: TokenAuth;
  /** HTTPS with this certificate and key (PEM files) instead of plain HTTP. */
  tls?: { certificate: string; key: string };
  /** The name in `host` (default 127.0.0.1): one that resolves to 127.0.0.1, for a certificate. */
  name?: string;
}

export interface TestRegistry {
  /** `127.0.0.1:PORT` (or `NAME:PORT`), the registry part of references. */
  host: string;
  root: string;
  /** `METHOD /path?query` of each request answered so far, from the access log. */
  requests: string[];
  stop(): Promise<void>;
}

/**
 * Starts Debian's docker-registry (the CNCF distribution server) on 127.0.0.1 with its
 * storage in a temp folder; `stop` ends it (by its pid) and removes the folder.
 */
export async function startRegistry(opts: RegistryOptions = {}): Promise<TestRegistry> {
  const root = tempDir('registry');
  const port = await freePort();
  const lines = [
    'version: 0.1',
    'log:',
    '  level: warn',
    '  accesslog:',
    '    disabled: false',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${path.join(root, 'data')}`,
    '  delete:',
    '    enabled: true',
    'http:',
    `  addr: 127.0.0.1:${port}`,
  ];
  if (opts.tls) lines.push('  tls:', `    certificate: ${opts.tls.certificate}`, `    key: ${opts.tls.key}`);
  if (opts.users) {
    const entries = Object.entries(opts.users).map(([u, p]) => `${u}:${bcrypt.hashSync(p, 5)}`);
    await fs.writeFile(path.join(root, 'htpasswd'), `${entries.join('\n')}\n`);
    lines.push('auth:', '  htpasswd:', '    realm: corral-test', `    path: ${path.join(root, 'htpasswd')}`);
  } else if (opts.token) {
    lines.push(
      'auth:',
      '  token:',
      `    realm: ${opts.token.realm}`,
      `    service: ${opts.token.service}`,
      `    issuer: ${opts.token.issuer}`,
      `    rootcertbundle: ${opts.token.certPath}`,
    );
  }
  const configPath = path.join(root, 'config.yml');
  await fs.writeFile(configPath, `${lines.join('\n')}\n`);
  const child = spawn('/usr/bin/docker-registry', ['serve', configPath], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // The access log (one line per request, on stdout) lets tests see which requests were made.
  const requests: string[] = [];
  let partial = '';
  child.stdout!.on('data', (d: Buffer) => {
    const lines = (partial + d.toString()).split('\n');
    partial = lines.pop()!;
    for (const line of lines) {
      const m = /"(GET|HEAD|POST|PUT|PATCH|DELETE) (\S+) HTTP/.exec(line);
      if (m) requests.push(`${m[1]} ${m[2]}`);
    }
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const host = `${opts.name ?? '127.0.0.1'}:${port}`;
  const stop = async (): Promise<void> => {
    await endChild(child);
    await fs.rm(root, { recursive: true, force: true });
  };
  try {
    await waitForHttp(`${opts.tls ? 'https' : 'http'}://127.0.0.1:${port}/v2/`, child, () => stderr);
  } catch (e) {
    await stop();
    throw e;
  }
  return { host, root, requests, stop };
}

async function endChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  process.kill(child.pid!, 'SIGTERM');
  const timer = setTimeout(() => child.exitCode === null && process.kill(child.pid!, 'SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

async function waitForHttp(url: string, child: ChildProcess, log: () => string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited (${child.exitCode}): ${log()}`);
    const ok = await new Promise<boolean>((resolve) => {
      // Only whether it answers: its certificate is the test's to check.
      const get = url.startsWith('https:') ? https.get : http.get;
      const req = get(url, { rejectUnauthorized: false }, (res) => {
        res.resume();
        resolve(true);
      });
      req.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`docker-registry did not answer on ${url}: ${log()}`);
}

export interface TokenServer extends TokenAuth {
  /** Scopes asked for, one entry per token request (`''` when none). */
  requests: { user?: string; scopes: string[]; oauth: boolean }[];
  stop(): Promise<void>;
}

function b64url(data: Buffer | string): string {
  return Buffer.from(data).toString('base64url');
}

/** A self-signed certificate and its key (openssl), as key.pem and cert.pem in `dir`. */
export function selfSignedCert(dir: string, commonName: string): { keyPath: string; certPath: string } {
  const keyPath = path.join(dir, 'key.pem');
  const certPath = path.join(dir, 'cert.pem');
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', `/CN=${commonName}`].concat([
      '-keyout',
      keyPath,
      '-out',
      certPath,
    ]),
    { stdio: 'ignore' },
  );
  return { keyPath, certPath };
}

/**
 * A token service for the registry's `token` auth, as Docker Hub runs one: Basic
 * credentials in, a JWT (RS256, certificate in x5c) granting the asked scopes out.
 * Anonymous callers get pull on repositories under `public/` only.
 */
export async function startTokenServer(users: Record<string, string>): Promise<TokenServer> {
  const dir = tempDir('token');
  const { keyPath, certPath } = selfSignedCert(dir, 'corral-test-token');
  const key = readFileSync(keyPath, 'utf8');
  const certDer = Buffer.from(
    readFileSync(certPath, 'utf8')
      .replace(/-----(BEGIN|END) CERTIFICATE-----/g, '')
      .replace(/\s+/g, ''),
    'base64',
  );
  const service = 'corral-test-registry';
  const issuer = 'corral-test-issuer';
  const requests: TokenServer['requests'] = [];
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    let scopes = url.searchParams.getAll('scope');
    let user: string | undefined;
    let oauth = false;
    const auth = req.headers.authorization;
    if (req.method === 'POST') {
      // OAuth2 refresh-token grant: the token "refresh-NAME" stands for user NAME.
      let text = '';
      for await (const chunk of req) text += chunk;
      const form = new URLSearchParams(text);
      const name = form.get('refresh_token')?.replace(/^refresh-/, '');
      if (form.get('grant_type') !== 'refresh_token' || !name || users[name] === undefined) {
        res.writeHead(401, { 'Content-Type': 'application/json' }).end('{"error":"invalid_grant"}');
        return;
      }
      user = name;
      oauth = true;
      scopes = (form.get('scope') ?? '').split(' ').filter(Boolean);
    } else if (auth?.startsWith('Basic ')) {
      const [u, ...rest] = Buffer.from(auth.slice(6), 'base64').toString().split(':');
      if (users[u!] === undefined || users[u!] !== rest.join(':')) {
        res.writeHead(401, { 'Content-Type': 'application/json' }).end('{"details":"wrong credentials"}');
        return;
      }
      user = u;
    }
    requests.push({ user, scopes, oauth });
    const access = scopes.flatMap((s) => {
      const [type, name, actions] = s.split(':');
      if (type !== 'repository' || !name || !actions) return [];
      const granted = user ? actions.split(',') : name.startsWith('public/') ? ['pull'] : [];
      return [{ type, name, actions: granted.filter((a) => actions.split(',').includes(a)) }];
    });
    const now = Math.floor(Date.now() / 1000);
    const header = { alg: 'RS256', typ: 'JWT', x5c: [certDer.toString('base64')] };
    const claims = {
      iss: issuer,
      sub: user ?? '',
      aud: service,
      exp: now + 300,
      nbf: now - 10,
      iat: now,
      jti: randomBytes(8).toString('hex'),
      access,
    };
    const signing = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const signature = sign('sha256', Buffer.from(signing), key);
    const token = `${signing}.${b64url(signature)}`;
    const answer = oauth ? { access_token: token, expires_in: 300 } : { token, expires_in: 300 };
    res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify(answer));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    realm: `http://127.0.0.1:${port}/token`,
    service,
    issuer,
    certPath,
    requests,
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}

export function sha256(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

export interface FlakyProxy {
  host: string;
  /** How many answers were cut off. */
  dropped: number;
  /** `METHOD /path` of every request passed on. */
  requests: string[];
  stop(): Promise<void>;
}

/**
 * An HTTP proxy on 127.0.0.1 in front of a registry that cuts the connection half way
 * through the answers `drop` picks: a dropped connection, made on purpose. Answers that
 * `chunk` picks lose their Content-Length and go out chunked.
 */
export async function startFlakyProxy(
  target: string,
  drop: (method: string, path: string) => boolean,
  chunk: (method: string, path: string) => boolean = () => false,
): Promise<FlakyProxy> {
  const state = { dropped: 0, requests: [] as string[] };
  const server = http.createServer((req, res) => {
    state.requests.push(`${req.method} ${req.url}`);
    const upstream = http.request(
      `http://${target}${req.url}`,
      { method: req.method, headers: req.headers },
      (up) => {
        const { 'content-length': length, ...rest } = up.headers;
        res.writeHead(
          up.statusCode ?? 502,
          chunk(req.method ?? 'GET', req.url ?? '/') ? rest : { ...rest, 'content-length': length },
        );
        if (!drop(req.method ?? 'GET', req.url ?? '/')) {
          up.pipe(res);
          return;
        }
        state.dropped++;
        const half = Math.floor(Number(up.headers['content-length'] ?? 0) / 2);
        let sent = 0;
        up.on('data', (chunk: Buffer) => {
          if (sent >= half) return;
          const part = chunk.subarray(0, half - sent);
          sent += part.length;
          res.write(part);
          if (sent >= half) {
            up.destroy();
            res.socket?.destroy();
          }
        });
      },
    );
    upstream.on('error', () => res.socket?.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    host: `127.0.0.1:${port}`,
    get dropped() {
      return state.dropped;
    },
    requests: state.requests,
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
