import { promises as fs } from 'node:fs';
import path from 'node:path';
import { tempDir } from '@corral/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient } from '../src/registry/client.js';
import { isRegistryError } from '../src/registry/errors.js';
import { ContentStore } from '../src/store/content.js';
import { parseReference } from '../src/store/reference.js';
import { type BuiltImage, buildImage, storeImage } from './registry-image.js';
import { startRegistry, startTokenServer, type TestRegistry, type TokenServer } from './registry-server.js';

async function readConfig(
  file: string,
): Promise<{ auths?: Record<string, { auth?: string }>; [k: string]: unknown }> {
  return JSON.parse(await fs.readFile(file, 'utf8'));
}

describe('basic auth (htpasswd, bcrypt entries made with bcryptjs)', () => {
  let registry: TestRegistry;
  let work: string;
  let image: BuiltImage;
  let source: ContentStore;

  beforeAll(async () => {
    registry = await startRegistry({ users: { alice: 'wonder land:1' } });
    work = tempDir('registry-basic');
    image = await buildImage({ format: 'oci', layers: [{ 'etc/secret': 'basic\n' }] });
    source = new ContentStore(path.join(work, 'source'));
    await storeImage(source, image);
  });

  afterAll(async () => {
    await registry?.stop();
    if (work) await fs.rm(work, { recursive: true, force: true });
  });

  it('asks for credentials and says to log in to the registry (no CLI command: the library has none)', async () => {
    const client = new RegistryClient({ configPath: path.join(work, 'anon', 'config.json') });
    expect((await client.ping(registry.host)).auth).toBe('basic');
    const err = await client.getManifest(parseReference(`${registry.host}/team/app:1`)).catch((e) => e);
    expect(isRegistryError(err, 'UNAUTHORIZED')).toBe(true);
    expect(err.message).toContain(`log in to ${registry.host}`);
    expect(err.host).toBe(registry.host);
  });

  it('refuses a wrong password at login and stores nothing', async () => {
    const configPath = path.join(work, 'wrong', 'config.json');
    const client = new RegistryClient({ configPath });
    const err = await client.login(registry.host, 'alice', 'nope').catch((e) => e);
    expect(isRegistryError(err, 'UNAUTHORIZED')).toBe(true);
    expect(err.message).toBe(
      `login attempt to http://${registry.host}/v2/ failed with status: 401 Unauthorized`,
    );
    await expect(fs.access(configPath)).rejects.toThrow();
  });

  it('uses credentials given to the client (a request of its own), refused with wrong ones', async () => {
    const configPath = path.join(work, 'given', 'config.json');
    const password = 'wonder land:1';
    const good = new RegistryClient({ configPath, credentials: { username: 'alice', password } });
    // Basic auth: no identity token to keep.
    await expect(good.checkLogin(registry.host, 'alice', password)).resolves.toEqual({});
    const bad = new RegistryClient({ configPath, credentials: { username: 'alice', password: 'nope' } });
    const err = await bad.getManifest(parseReference(`${registry.host}/team/none:1`)).catch((e) => e);
    expect(isRegistryError(err, 'UNAUTHORIZED')).toBe(true);
    const missing = await good.getManifest(parseReference(`${registry.host}/team/none:1`)).catch((e) => e);
    expect(isRegistryError(missing, 'UNAUTHORIZED')).toBe(false);
    // checkLogin stores nothing.
    await expect(fs.access(configPath)).rejects.toThrow();
  });

  it('logs in, keeps the rest of config.json, and a new client pushes and pulls with the stored credentials', async () => {
    const configPath = path.join(work, 'ok', 'config.json');
    await fs.mkdir(path.dirname(configPath), { recursive: true });
    await fs.writeFile(
      configPath,
      JSON.stringify({ psFormat: 'table {{.ID}}', auths: { 'other.example': { auth: 'eDp5' } } }),
    );
    await new RegistryClient({ configPath }).login(registry.host, 'alice', 'wonder land:1');
    const config = await readConfig(configPath);
    expect(config.psFormat).toBe('table {{.ID}}');
    expect(config.auths?.['other.example']).toEqual({ auth: 'eDp5' });
    expect(Buffer.from(config.auths![registry.host]!.auth!, 'base64').toString()).toBe('alice:wonder land:1');
    expect((await fs.stat(configPath)).mode & 0o777).toBe(0o600);

    const client = new RegistryClient({ configPath });
    const ref = parseReference(`${registry.host}/team/app:1`);
    expect((await client.push(ref, { manifest: image.manifest }, source)).digest).toBe(image.digest);
    const pulled = await client.pull(ref, new ContentStore(path.join(work, 'pulled')));
    expect(pulled.digest).toBe(image.digest);

    expect(await client.logout(registry.host)).toBe(true);
    expect((await readConfig(configPath)).auths?.[registry.host]).toBeUndefined();
    const after = await new RegistryClient({ configPath }).getManifest(ref).catch((e) => e);
    expect(isRegistryError(after, 'UNAUTHORIZED')).toBe(true);
  });

  it('reads docker-style keys (scheme and path) and says when stored credentials are refused', async () => {
    const configPath = path.join(work, 'stale', 'config.json');
    await fs.mkdir(path.dirname(configPath), { recursive: true });
    const auth = Buffer.from('alice:old-password').toString('base64');
    await fs.writeFile(configPath, JSON.stringify({ auths: { [`https://${registry.host}/v1/`]: { auth } } }));
    const err = await new RegistryClient({ configPath })
      .getManifest(parseReference(`${registry.host}/team/app:1`))
      .catch((e) => e);
    expect(isRegistryError(err, 'UNAUTHORIZED')).toBe(true);
    expect(err.message).toContain('alice');
    expect(err.message).toContain(`log in to ${registry.host}`);
    expect(err.host).toBe(registry.host);
  });

  it('says what is wrong with a config.json that is not JSON, and leaves it as it was', async () => {
    const configPath = path.join(work, 'broken', 'config.json');
    await fs.mkdir(path.dirname(configPath), { recursive: true });
    await fs.writeFile(configPath, '{ not json');
    const err = await new RegistryClient({ configPath })
      .login(registry.host, 'alice', 'wonder land:1')
      .catch((e) => e);
    expect(isRegistryError(err, 'INVALID_CONFIG')).toBe(true);
    expect(err.message).toContain(configPath);
    expect(await fs.readFile(configPath, 'utf8')).toBe('{ not json');
  });
});

describe('bearer tokens from a token service', () => {
  let tokens: TokenServer;
  let registry: TestRegistry;
  let work: string;
  let image: BuiltImage;
  let source: ContentStore;

  beforeAll(async () => {
    tokens = await startTokenServer({ bob: 'builder' });
    registry = await startRegistry({ token: tokens });
    work = tempDir('registry-token');
    image = await buildImage({
      format: 'docker',
      layers: [{ 'etc/token': 'bearer\n' }, { 'etc/more': 'more\n' }],
    });
    source = new ContentStore(path.join(work, 'source'));
    await storeImage(source, image);
  });

  afterAll(async () => {
    await registry?.stop();
    await tokens?.stop();
    if (work) await fs.rm(work, { recursive: true, force: true });
  });

  it('pulls anonymously where the token service allows it, and asks for login where not', async () => {
    const configPath = path.join(work, 'bob', 'config.json');
    const bob = new RegistryClient({ configPath });
    expect((await bob.ping(registry.host)).auth).toBe('bearer');
    await bob.login(registry.host, 'bob', 'builder');
    await bob.push(parseReference(`${registry.host}/public/tool:1`), { manifest: image.manifest }, source);
    await bob.push(parseReference(`${registry.host}/private/tool:1`), { manifest: image.manifest }, source);

    const anon = new RegistryClient({ configPath: path.join(work, 'anon', 'config.json') });
    const pulled = await anon.pull(
      parseReference(`${registry.host}/public/tool:1`),
      new ContentStore(path.join(work, 'anon-store')),
    );
    expect(pulled.digest).toBe(image.digest);
    expect(
      tokens.requests.some((r) => r.user === undefined && r.scopes.includes('repository:public/tool:pull')),
    ).toBe(true);

    const err = await anon.getManifest(parseReference(`${registry.host}/private/tool:1`)).catch((e) => e);
    expect(isRegistryError(err, 'UNAUTHORIZED')).toBe(true);
    expect(err.message).toContain(`log in to ${registry.host}`);
    expect(err.host).toBe(registry.host);

    const push = await anon
      .push(parseReference(`${registry.host}/public/tool:2`), { manifest: image.manifest }, source)
      .catch((e) => e);
    expect(isRegistryError(push, 'UNAUTHORIZED', 'DENIED')).toBe(true);
    expect(push.message).toContain(`log in to ${registry.host}`);
    expect(push.message).not.toContain('corral');
  });

  it('asks for one token per scope and reuses it', async () => {
    const configPath = path.join(work, 'bob', 'config.json');
    const client = new RegistryClient({ configPath });
    const ref = parseReference(`${registry.host}/team/cache:1`);
    const before = tokens.requests.length;
    await client.push(ref, { manifest: image.manifest }, source);
    const pushTokens = tokens.requests.slice(before);
    expect(pushTokens.map((r) => r.scopes)).toEqual([['repository:team/cache:pull,push']]);
    expect(pushTokens[0]!.user).toBe('bob');

    const mid = tokens.requests.length;
    await client.pull(ref, new ContentStore(path.join(work, 'cache-1')));
    await client.pull(ref, new ContentStore(path.join(work, 'cache-2')));
    expect(tokens.requests.slice(mid).map((r) => r.scopes)).toEqual([['repository:team/cache:pull']]);
  });

  it('mounts blobs across repositories with a token that covers both', async () => {
    const client = new RegistryClient({ configPath: path.join(work, 'bob', 'config.json') });
    const res = await client.push(
      parseReference(`${registry.host}/team/copy:1`),
      { manifest: image.manifest },
      source,
      {
        mountFrom: 'private/tool',
      },
    );
    expect(res.blobs.map((b) => b.outcome)).toEqual(['mounted', 'mounted', 'mounted']);
    const both = tokens.requests.filter((r) => r.scopes.length > 1);
    expect(both.map((r) => r.scopes.sort())).toEqual([
      ['repository:private/tool:pull', 'repository:team/copy:pull,push'],
    ]);
  });

  it('trades an identity token (OAuth2 refresh token) from config.json for access tokens', async () => {
    const configPath = path.join(work, 'oauth', 'config.json');
    await fs.mkdir(path.dirname(configPath), { recursive: true });
    const entry = { auth: Buffer.from('<token>:').toString('base64'), identitytoken: 'refresh-bob' };
    await fs.writeFile(configPath, JSON.stringify({ auths: { [registry.host]: entry } }));
    const before = tokens.requests.length;
    const pulled = await new RegistryClient({ configPath }).pull(
      parseReference(`${registry.host}/private/tool:1`),
      new ContentStore(path.join(work, 'oauth-store')),
    );
    expect(pulled.digest).toBe(image.digest);
    expect(tokens.requests.slice(before)).toEqual([
      { user: 'bob', scopes: ['repository:private/tool:pull'], oauth: true },
    ]);

    await fs.writeFile(
      configPath,
      JSON.stringify({ auths: { [registry.host]: { ...entry, identitytoken: 'refresh-eve' } } }),
    );
    const err = await new RegistryClient({ configPath })
      .getManifest(parseReference(`${registry.host}/private/tool:1`))
      .catch((e) => e);
    expect(isRegistryError(err, 'UNAUTHORIZED')).toBe(true);
    expect(err.message).toContain(`log in to ${registry.host}`);
    expect(err.host).toBe(registry.host);
  });

  it('refuses wrong credentials at login and keeps config.json as it was', async () => {
    const configPath = path.join(work, 'bad', 'config.json');
    const err = await new RegistryClient({ configPath }).login(registry.host, 'bob', 'wrong').catch((e) => e);
    expect(isRegistryError(err, 'UNAUTHORIZED')).toBe(true);
    expect(err.message).toContain('bob');
    await expect(fs.access(configPath)).rejects.toThrow();
  });
});
