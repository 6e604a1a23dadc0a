// The corral CLI against Debian's docker-registry (the CNCF distribution server) on loopback,
// with skopeo as an independent client that must agree on every digest.
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import bcrypt from 'bcryptjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Corral,
  mountsUnder,
  must,
  type Registry,
  requireProgram,
  startRegistry,
  tempRoot,
  unmountUnder,
} from './helpers.js';

const SKOPEO = '/usr/bin/skopeo';

let tmp = '';
const registries: Registry[] = [];
const corrals: Corral[] = [];

/** A corral root of its own; DOCKER_CONFIG points at `config` (credentials) when given. */
function corral(name: string, config?: string): Corral {
  const env = { ...process.env, DOCKER_CONFIG: config ?? path.join(tmp, `${name}-docker-config`) };
  const c = new Corral(path.join(tmp, name), env);
  corrals.push(c);
  return c;
}

function sha256(data: string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** skopeo's view of a reference: the manifest digest, and the digest of the config blob (the image ID). */
async function skopeoView(
  ref: string,
  extra: string[] = [],
): Promise<{ digest: string; configDigest: string }> {
  const base = [...extra, '--tls-verify=false', `docker://${ref}`];
  const inspect = JSON.parse((await must(SKOPEO, ['inspect', ...base], { env: skopeoEnv() })).out);
  const config = (await must(SKOPEO, ['inspect', '--config', '--raw', ...base], { env: skopeoEnv() })).stdout;
  return { digest: inspect.Digest, configDigest: sha256(config) };
}

/** skopeo reads no credentials of the machine's user. */
function skopeoEnv(): NodeJS.ProcessEnv {
  return {
    ...process.env,
    REGISTRY_AUTH_FILE: path.join(tmp, 'skopeo-auth.json'),
    DOCKER_CONFIG: path.join(tmp, 'none'),
  };
}

beforeAll(async () => {
  requireProgram(SKOPEO, 'skopeo');
  tmp = await tempRoot('registry');
});

afterAll(async () => {
  for (const r of registries) await r.stop();
  for (const c of corrals) await c.removeContainers().catch(() => {});
  if (tmp) {
    await unmountUnder(tmp);
    if (!mountsUnder(tmp).length) await fs.rm(tmp, { recursive: true, force: true });
  }
});

describe('corral push / pull against docker-registry, checked by skopeo', () => {
  let registry: Registry;
  let ref = '';
  const pusher = () => corrals[0]!;

  beforeAll(async () => {
    registry = await startRegistry(path.join(tmp, 'registry-open'));
    registries.push(registry);
    ref = `${registry.host}/e2e/busybox:1`;
    const c = corral('pusher');
    await c.must(['run', '--rm', 'busybox', 'true']);
  });

  it('corral tag + push, then a second empty corral root pulls and runs it with equal digests', async () => {
    await pusher().must(['tag', 'busybox', ref]);
    const pushed = await pusher().must(['push', ref]);
    const local = await pusher().image(ref);
    expect(pushed.out).toContain(local.manifestDigest);

    const puller = corral('puller');
    expect(await puller.images()).toEqual([]);
    const pulled = await puller.must(['pull', ref]);
    expect(pulled.out).toContain(local.manifestDigest);
    const remote = await puller.image(ref);
    expect(remote.id).toBe(local.id);
    expect(remote.manifestDigest).toBe(local.manifestDigest);
    expect((await puller.must(['run', '--rm', ref, 'echo', 'pulled and ran'])).out).toBe('pulled and ran');

    const skopeo = await skopeoView(ref);
    expect(skopeo.digest).toBe(local.manifestDigest);
    expect(skopeo.configDigest).toBe(local.id);
  });

  it('pushes an image made by corral commit; the pulled copy runs with its files and digests', async () => {
    const made = `${registry.host}/e2e/made:2`;
    await pusher().must([
      'run',
      '--name',
      'e2e-maker',
      'busybox',
      'sh',
      '-c',
      'echo made > /made && rm /bin/vi',
    ]);
    const id = (await pusher().must(['commit', 'e2e-maker', made])).out;
    await pusher().must(['rm', 'e2e-maker']);
    await pusher().must(['push', made]);
    const local = await pusher().image(made);

    const puller = corral('puller-made');
    await puller.must(['pull', made]);
    expect((await puller.image(made)).id).toBe(id);
    expect((await puller.image(made)).manifestDigest).toBe(local.manifestDigest);
    expect(
      (await puller.must(['run', '--rm', made, 'sh', '-c', 'cat /made; test -e /bin/vi || echo vi-gone']))
        .out,
    ).toBe('made\nvi-gone');
    // By digest, too.
    const byDigest = `${registry.host}/e2e/made@${local.manifestDigest}`;
    const third = corral('puller-digest');
    await third.must(['pull', byDigest]);
    expect((await third.images()).map((i) => i.id)).toEqual([id]);

    const skopeo = await skopeoView(made);
    expect(skopeo).toEqual({ digest: local.manifestDigest, configDigest: id });
  });
});

describe('corral login against docker-registry with htpasswd (bcrypt) auth', () => {
  let registry: Registry;
  const password = 'e2e pass:word';
  let config = '';

  beforeAll(async () => {
    registry = await startRegistry(
      path.join(tmp, 'registry-auth'),
      `alice:${bcrypt.hashSync(password, 5)}\n`,
    );
    registries.push(registry);
    config = path.join(tmp, 'login-docker-config');
  });

  it('refuses to push before login and says to log in', async () => {
    const c = corral('auth-pusher', config);
    await c.must(['run', '--rm', 'busybox', 'true']);
    const ref = `${registry.host}/team/busybox:1`;
    await c.must(['tag', 'busybox', ref]);
    const r = await c.run(['push', ref]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain(`corral login ${registry.host}`);
  });

  it('refuses a wrong password and stores nothing', async () => {
    const c = corral('auth-wrong', path.join(tmp, 'wrong-docker-config'));
    const r = await c.run(['login', '-u', 'alice', '--password-stdin', registry.host], 'not it\n');
    expect(r.status).not.toBe(0);
    await expect(fs.access(path.join(tmp, 'wrong-docker-config', 'config.json'))).rejects.toThrow();
  });

  it('logs in (credentials in Docker config.json), pushes, pulls in another root, skopeo agrees', async () => {
    const c = corrals.find((x) => x.root.endsWith('auth-pusher'))!;
    const login = await c.must(['login', '-u', 'alice', '--password-stdin', registry.host], `${password}\n`);
    expect(login.out).toContain('Login Succeeded');
    const stored = JSON.parse(await fs.readFile(path.join(config, 'config.json'), 'utf8'));
    expect(Buffer.from(stored.auths[registry.host].auth, 'base64').toString()).toBe(`alice:${password}`);

    const ref = `${registry.host}/team/busybox:1`;
    await c.must(['push', ref]);
    const local = await c.image(ref);
    const puller = corral('auth-puller', config);
    await puller.must(['pull', ref]);
    expect((await puller.image(ref)).manifestDigest).toBe(local.manifestDigest);
    expect((await puller.must(['run', '--rm', ref, 'echo', 'authorized'])).out).toBe('authorized');

    const skopeo = await skopeoView(ref, ['--creds', `alice:${password}`]);
    expect(skopeo).toEqual({ digest: local.manifestDigest, configDigest: local.id });
    // Without credentials skopeo is refused: the registry really asks for them.
    const anon = await skopeoView(ref).catch((e: Error) => e);
    expect(anon).toBeInstanceOf(Error);
  });
});
