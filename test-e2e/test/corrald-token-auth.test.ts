import { execFileSync } from 'node:child_process';
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  type KeyObject,
  randomBytes,
  sign,
} from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Cleanups, exec } from '@corral/testkit';
import type Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCorrald } from './corrald.js';
import { type Registry, startRegistry } from './helpers.js';

// Identity tokens through corrald: a docker-registry with `auth: token` whose token service is
// served by this test on loopback (JWTs signed with a key made here). docker login gets a
// refresh token from the service (offline_token) through corrald's /auth, the docker CLI keeps
// it as `identitytoken`, and pulls and pushes then send it in X-Registry-Auth: corrald trades it
// at the token service (grant_type=refresh_token) and never sees the password again.
const SERVICE = 'corral-token-test';
const ISSUER = 'corral-token-issuer';
const PASSWORD = 'token pass';
const c = new Cleanups();
let dir = '';
let key: KeyObject;
let kid = '';
let registry: Registry;
let tokenServer: Server;
let dockerode: Docker;
let env: NodeJS.ProcessEnv;
/** How each token request was answered: `password`, `password+offline`, `refresh`, `refused`. */
const grants: string[] = [];
const refreshTokens = new Set<string>();

/** libtrust's key id (what docker-registry matches a token's `kid` with): base32 of SHA-256 of the SPKI, 240 bits. */
function libtrustKeyId(pub: KeyObject): string {
  const bytes = createHash('sha256')
    .update(pub.export({ type: 'spki', format: 'der' }))
    .digest()
    .subarray(0, 30);
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const b of bytes) bits += b.toString(2).padStart(8, '0');
  let s = '';
  for (let i = 0; i < bits.length; i += 5) s += alphabet[Number.parseInt(bits.slice(i, i + 5), 2)];
  return s.match(/.{4}/g)!.join(':');
}

const b64url = (v: unknown) =>
  Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

/** A registry token granting every action asked for in `scopes` (`repository:NAME:pull,push`). */
function jwt(scopes: string[]): string {
  const now = Math.floor(Date.now() / 1000);
  const access = scopes.map((s) => {
    const first = s.indexOf(':');
    const last = s.lastIndexOf(':');
    return { type: s.slice(0, first), name: s.slice(first + 1, last), actions: s.slice(last + 1).split(',') };
  });
  const claims = {
    iss: ISSUER,
    sub: 'alice',
    aud: SERVICE,
    exp: now + 300,
    nbf: now - 10,
    iat: now,
    jti: randomBytes(8).toString('hex'),
    access,
  };
  const input = `${b64url({ typ: 'JWT', alg: 'ES256', kid })}.${b64url(claims)}`;
  const sig = sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
  return `${input}.${sig.toString('base64url')}`;
}

async function body(req: IncomingMessage): Promise<string> {
  let text = '';
  for await (const chunk of req) text += chunk;
  return text;
}

/** The token service (Docker's token auth spec, with OAuth2's refresh grant). */
async function serveToken(req: IncomingMessage): Promise<{ status: number; json?: unknown }> {
  const url = new URL(req.url ?? '/', 'http://token');
  if (url.pathname !== '/token') return { status: 404 };
  if (req.method === 'POST') {
    const form = new URLSearchParams(await body(req));
    const rt = form.get('refresh_token') ?? '';
    if (
      form.get('grant_type') !== 'refresh_token' ||
      !refreshTokens.has(rt) ||
      form.get('service') !== SERVICE
    ) {
      grants.push('refused');
      return { status: 401, json: { error: 'invalid_grant' } };
    }
    grants.push('refresh');
    const scopes = (form.get('scope') ?? '').split(' ').filter(Boolean);
    return { status: 200, json: { access_token: jwt(scopes), expires_in: 300 } };
  }
  const auth = req.headers.authorization ?? '';
  const [user, pass] = Buffer.from(auth.replace(/^Basic /, ''), 'base64')
    .toString()
    .split(/:(.*)/s);
  if (!auth.startsWith('Basic ') || user !== 'alice' || pass !== PASSWORD) {
    grants.push('refused');
    return { status: 401, json: { details: 'wrong credentials' } };
  }
  const offline = url.searchParams.get('offline_token') === 'true';
  grants.push(offline ? 'password+offline' : 'password');
  const answer: Record<string, unknown> = { token: jwt(url.searchParams.getAll('scope')), expires_in: 300 };
  if (offline) {
    const rt = `rt-${randomBytes(12).toString('hex')}`;
    refreshTokens.add(rt);
    answer.refresh_token = rt;
  }
  return { status: 200, json: answer };
}

beforeAll(async () => {
  dir = c.tempDir('corrald-token');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=corral token test',
      '-keyout',
      join(dir, 'key.pem'),
      '-out',
      join(dir, 'cert.pem'),
    ],
    { stdio: 'ignore' },
  );
  key = createPrivateKey(readFileSync(join(dir, 'key.pem')));
  kid = libtrustKeyId(createPublicKey(key));

  tokenServer = createServer((req, res) => {
    serveToken(req).then(
      (a) => {
        res.writeHead(a.status, { 'Content-Type': 'application/json' });
        res.end(a.json === undefined ? '' : JSON.stringify(a.json));
      },
      () => {
        res.writeHead(500);
        res.end();
      },
    );
  });
  await new Promise<void>((r) => tokenServer.listen(0, '127.0.0.1', r));
  c.add(() => new Promise<void>((r) => tokenServer.close(() => r())));
  const realm = `http://127.0.0.1:${(tokenServer.address() as AddressInfo).port}/token`;
  registry = await startRegistry(join(dir, 'registry'), undefined, {
    realm,
    service: SERVICE,
    issuer: ISSUER,
    rootcertbundle: join(dir, 'cert.pem'),
  });
  c.add(() => registry.stop());

  ({ env, dockerode } = await startCorrald(c, dir));
});
afterAll(() => c.run());

const docker = (args: string[], input?: string) => exec('docker', args, { env, input });
const must = async (args: string[], input?: string) => {
  const r = await docker(args, input);
  if (r.status !== 0) throw new Error(`docker ${args.join(' ')}: ${r.stderr}`);
  return r;
};
const kept = () =>
  JSON.parse(readFileSync(join(dir, 'docker-config', 'config.json'), 'utf8')).auths[registry.host];
const follow = (stream: NodeJS.ReadableStream) =>
  new Promise<{ status?: string; error?: string }[]>((resolve, reject) =>
    dockerode.modem.followProgress(stream, (err: Error | null, out: { status?: string }[]) =>
      err ? reject(err) : resolve(out),
    ),
  );

describe('corrald with a token-auth registry: identity tokens', () => {
  it('docker login through /auth gets an identity token from the token service; the client keeps it, not the password', async () => {
    const wrong = await docker(['login', '-u', 'alice', '--password-stdin', registry.host], 'nope\n');
    expect(wrong.status).toBe(1);
    expect(wrong.stderr).toContain('Error response from daemon');
    const login = await must(['login', '-u', 'alice', '--password-stdin', registry.host], `${PASSWORD}\n`);
    expect(login.stdout).toContain('Login Succeeded');
    expect(grants).toContain('password+offline');
    const entry = kept();
    expect(refreshTokens.has(entry.identitytoken)).toBe(true);
    expect(Buffer.from(entry.auth, 'base64').toString()).toBe('alice:');
  });

  it('pushes and pulls with the identity token alone (X-Registry-Auth identitytoken, a refresh grant)', async () => {
    const ref = `${registry.host}/team/bb:1`;
    await must(['tag', 'busybox', ref]);
    grants.length = 0;
    const push = await must(['push', ref]);
    expect(push.stdout).toMatch(/digest: sha256:[0-9a-f]{64}/);
    await must(['rmi', ref]);
    const pull = await must(['pull', ref]);
    expect(pull.stdout).toContain('Digest: sha256:');
    expect((await must(['run', '--rm', '--network', 'none', ref, 'echo', 'by token'])).out).toBe('by token');
    // Every token came from the refresh grant: the password was never sent again.
    expect(grants.length).toBeGreaterThan(0);
    expect(new Set(grants)).toEqual(new Set(['refresh']));
  });

  it.skipIf(!existsSync('/usr/bin/docker'))(
    "Debian's docker 20.10 logs in, keeps the identity token and pulls with it",
    async () => {
      const config = join(dir, 'docker-config-debian');
      const env20 = { ...env, DOCKER_CONFIG: config };
      const login = await exec(
        '/usr/bin/docker',
        ['login', '-u', 'alice', '--password-stdin', registry.host],
        {
          env: env20,
          input: `${PASSWORD}\n`,
        },
      );
      expect(login.status, login.stderr).toBe(0);
      const entry = JSON.parse(readFileSync(join(config, 'config.json'), 'utf8')).auths[registry.host];
      expect(refreshTokens.has(entry.identitytoken)).toBe(true);
      const ref = `${registry.host}/team/bb:1`;
      await must(['rmi', '-f', ref]).catch(() => {});
      grants.length = 0;
      const pull = await exec('/usr/bin/docker', ['pull', ref], { env: env20 });
      expect(pull.status, pull.stderr).toBe(0);
      expect(new Set(grants)).toEqual(new Set(['refresh']));
    },
  );

  it('logs in again with the kept identity token (/auth with identitytoken, as dockerode sends it; both docker CLIs re-use only a kept password)', async () => {
    grants.length = 0;
    const entry = kept();
    const res = await dockerode.checkAuth({
      identitytoken: entry.identitytoken,
      serveraddress: registry.host,
    });
    expect(res.Status).toBe('Login Succeeded');
    expect(grants).toEqual(['refresh']);
    refreshTokens.delete(entry.identitytoken);
    const revoked = await dockerode
      .checkAuth({ identitytoken: entry.identitytoken, serveraddress: registry.host })
      .catch((e: { statusCode?: number }) => e);
    expect((revoked as { statusCode?: number }).statusCode).toBe(401);
    refreshTokens.add(entry.identitytoken);
  });

  it('dockerode: an identitytoken and a registrytoken in authconfig pull; a revoked identity token fails in the stream', async () => {
    const ref = `${registry.host}/team/bb:1`;
    const [rt] = [...refreshTokens];
    await must(['rmi', ref]);
    let events = await follow(
      await dockerode.pull(ref, { authconfig: { identitytoken: rt, serveraddress: registry.host } }),
    );
    expect(events.map((e) => e.status)).toContain(`Status: Downloaded newer image for ${ref}`);

    // A registry token goes to the registry as it is: the token service is not asked.
    await must(['rmi', ref]);
    grants.length = 0;
    const token = jwt(['repository:team/bb:pull']);
    events = await follow(
      await dockerode.pull(ref, { authconfig: { registrytoken: token, serveraddress: registry.host } }),
    );
    expect(events.map((e) => e.status)).toContain(`Status: Downloaded newer image for ${ref}`);
    expect(grants).toEqual([]);

    await must(['rmi', ref]);
    refreshTokens.clear();
    events = await follow(
      await dockerode.pull(ref, { authconfig: { identitytoken: rt, serveraddress: registry.host } }),
    );
    expect(events.at(-1)?.error).toContain(registry.host);
    expect(grants).toContain('refused');
    expect(
      await dockerode
        .getImage(ref)
        .inspect()
        .catch((e: Error) => e),
    ).toBeInstanceOf(Error);
  });
});
