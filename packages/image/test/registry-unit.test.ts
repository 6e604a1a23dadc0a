import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { tempDir } from '@corral/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerCredentialStore, defaultDockerConfigPath, parseChallenge } from '../src/registry/auth.js';
import { RegistryClient } from '../src/registry/client.js';
import { isRegistryError } from '../src/registry/errors.js';
import { isLoopbackHost, registryApiHost } from '../src/registry/hosts.js';
import { DigestVerifier } from '../src/registry/http.js';
import { normalizePlatform, parsePlatform, selectPlatform } from '../src/registry/manifest.js';
import { createProgressRenderer, formatBytes, type ProgressEvent } from '../src/registry/progress.js';
import { parseReference } from '../src/store/reference.js';
import type { ImageIndex } from '../src/store/types.js';
import { sha256 } from './registry-server.js';

describe('WWW-Authenticate challenges', () => {
  it('reads a Bearer challenge with quoted, escaped and comma-separated values', () => {
    expect(
      parseChallenge(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull,push",error="insufficient_scope"',
      ),
    ).toEqual({
      scheme: 'bearer',
      params: {
        realm: 'https://auth.docker.io/token',
        service: 'registry.docker.io',
        scope: 'repository:library/busybox:pull,push',
        error: 'insufficient_scope',
      },
    });
    expect(parseChallenge('Basic realm="a \\"quoted\\" realm"')).toEqual({
      scheme: 'basic',
      params: { realm: 'a "quoted" realm' },
    });
  });

  it('prefers Bearer when several challenges are offered and ignores unknown schemes', () => {
    expect(parseChallenge('Basic realm="r", Bearer realm="https://t/token",service=s')?.scheme).toBe(
      'bearer',
    );
    expect(parseChallenge('Negotiate abc')).toBeUndefined();
    expect(parseChallenge(undefined)).toBeUndefined();
  });
});

describe('platforms', () => {
  const index = (
    platforms: ({ os: string; architecture: string; variant?: string } | undefined)[],
  ): ImageIndex => ({
    schemaVersion: 2,
    manifests: platforms.map((platform, i) => ({
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest: `sha256:${String(i).repeat(64)}`,
      size: 100 + i,
      ...(platform ? { platform } : {}),
    })),
  });

  it('normalises architecture names and the arm64 variant', () => {
    expect(normalizePlatform({ os: 'Linux', architecture: 'x86_64' })).toEqual({
      os: 'linux',
      architecture: 'amd64',
    });
    expect(normalizePlatform({ os: 'linux', architecture: 'aarch64', variant: 'v8' })).toEqual({
      os: 'linux',
      architecture: 'arm64',
    });
    expect(normalizePlatform({ os: 'linux', architecture: 'arm' })).toEqual({
      os: 'linux',
      architecture: 'arm',
      variant: 'v7',
    });
    expect(parsePlatform('linux/arm/6')).toEqual({ os: 'linux', architecture: 'arm', variant: 'v6' });
    expect(parsePlatform('arm64')).toEqual({ os: 'linux', architecture: 'arm64' });
  });

  it('refuses a malformed platform with a message that shows the form', () => {
    for (const bad of ['linux/', '/amd64', 'a/b/c/d', '']) {
      const err = (() => {
        try {
          parsePlatform(bad);
        } catch (e) {
          return e;
        }
      })();
      expect(isRegistryError(err, 'INVALID_PLATFORM')).toBe(true);
      expect((err as Error).message).toContain('OS/ARCH[/VARIANT]');
    }
  });

  it('picks exact matches, variant-aware, skipping attestations', () => {
    const idx = index([
      { os: 'linux', architecture: 'amd64' },
      { os: 'linux', architecture: 'arm64', variant: 'v8' },
      { os: 'linux', architecture: 'arm', variant: 'v6' },
      { os: 'linux', architecture: 'arm', variant: 'v7' },
      { os: 'windows', architecture: 'amd64' },
      undefined,
    ]);
    idx.manifests.push({
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest: `sha256:${'a'.repeat(64)}`,
      size: 1,
      platform: { os: 'unknown', architecture: 'unknown' },
      annotations: { 'vnd.docker.reference.type': 'attestation-manifest' },
    });
    expect(selectPlatform(idx, { os: 'linux', architecture: 'amd64' })?.size).toBe(100);
    expect(selectPlatform(idx, { os: 'linux', architecture: 'arm64' })?.size).toBe(101);
    expect(selectPlatform(idx, parsePlatform('linux/arm/v7'))?.size).toBe(103);
    expect(selectPlatform(idx, parsePlatform('linux/arm/v6'))?.size).toBe(102);
    expect(selectPlatform(idx, parsePlatform('windows/amd64'))?.size).toBe(104);
    expect(selectPlatform(idx, parsePlatform('linux/s390x'))).toBeUndefined();
    expect(selectPlatform(idx, { os: 'unknown', architecture: 'unknown' })).toBeUndefined();
  });

  it('lets arm v7 fall back to v6 but never v6 up to v7', () => {
    const idx = index([{ os: 'linux', architecture: 'arm', variant: 'v6' }]);
    expect(selectPlatform(idx, parsePlatform('linux/arm/v7'))?.size).toBe(100);
    const v7only = index([{ os: 'linux', architecture: 'arm', variant: 'v7' }]);
    expect(selectPlatform(v7only, parsePlatform('linux/arm/v6'))).toBeUndefined();
  });
});

describe('references as the registry client reads them', () => {
  it('follows docker: Docker Hub and library/, hosts with a dot, a port or localhost, digests', () => {
    expect(parseReference('busybox')).toMatchObject({
      domain: 'docker.io',
      path: 'library/busybox',
      tag: 'latest',
    });
    expect(registryApiHost(parseReference('busybox').domain)).toBe('registry-1.docker.io');
    expect(parseReference('localhost:5000/a/b:tag')).toMatchObject({
      domain: 'localhost:5000',
      path: 'a/b',
      tag: 'tag',
    });
    expect(parseReference('localhost/a')).toMatchObject({ domain: 'localhost', path: 'a' });
    expect(parseReference('user/app')).toMatchObject({ domain: 'docker.io', path: 'user/app' });
    expect(parseReference('ghcr.io/o/r:1')).toMatchObject({ domain: 'ghcr.io', path: 'o/r' });
    const digest = `sha256:${'ab'.repeat(32)}`;
    expect(parseReference(`busybox@${digest}`)).toMatchObject({ path: 'library/busybox', digest });
  });
});

describe('where credentials live by default', () => {
  it('uses $DOCKER_CONFIG/config.json, else ~/.docker/config.json', () => {
    const old = process.env['DOCKER_CONFIG'];
    try {
      process.env['DOCKER_CONFIG'] = '/tmp/corral-docker-config';
      expect(defaultDockerConfigPath()).toBe('/tmp/corral-docker-config/config.json');
      delete process.env['DOCKER_CONFIG'];
      expect(defaultDockerConfigPath()).toBe(path.join(os.homedir(), '.docker', 'config.json'));
    } finally {
      if (old === undefined) delete process.env['DOCKER_CONFIG'];
      else process.env['DOCKER_CONFIG'] = old;
    }
  });
});

describe('hosts and plain HTTP', () => {
  it('knows loopback hosts and Docker Hub', () => {
    for (const h of ['localhost', 'localhost:5000', '127.0.0.1', '127.1.2.3:80', '[::1]:5000', '::1']) {
      expect(isLoopbackHost(h)).toBe(true);
    }
    for (const h of ['example.com', '10.0.0.1:5000', '128.0.0.1', '[::2]:5000', 'localhost.example.com']) {
      expect(isLoopbackHost(h)).toBe(false);
    }
    expect(registryApiHost('docker.io')).toBe('registry-1.docker.io');
  });

  it('allows plain HTTP only for loopback registries and those named insecure', () => {
    const client = new RegistryClient({ insecureRegistries: ['build.lan:5000', 'mirror.lan'] });
    expect(client.isInsecure('127.0.0.1:5000')).toBe(true);
    expect(client.isInsecure('build.lan:5000')).toBe(true);
    expect(client.isInsecure('mirror.lan:443')).toBe(true);
    expect(client.isInsecure('build.lan:6000')).toBe(false);
    expect(client.isInsecure('docker.io')).toBe(false);
  });
});

describe('digest verification while streaming', () => {
  it('passes matching bytes and fails on a different digest or size, naming both digests', async () => {
    const data = Buffer.from('layer bytes');
    const good = new DigestVerifier(sha256(data), data.length, 'blob');
    const out: Buffer[] = [];
    await pipeline(Readable.from([data]), good, async (src) => {
      for await (const c of src) out.push(c as Buffer);
    });
    expect(Buffer.concat(out).equals(data)).toBe(true);

    const wrong = sha256('other');
    const err = await pipeline(
      Readable.from([data]),
      new DigestVerifier(wrong, data.length, 'blob X'),
      new PassThrough().resume(),
    ).catch((e) => e);
    expect(isRegistryError(err, 'DIGEST_MISMATCH')).toBe(true);
    expect(err.message).toContain(wrong);
    expect(err.message).toContain(sha256(data));

    const long = await pipeline(
      Readable.from([data]),
      new DigestVerifier(sha256(data), 3, 'blob'),
      new PassThrough().resume(),
    ).catch((e) => e);
    expect(isRegistryError(long, 'SIZE_MISMATCH')).toBe(true);
  });
});

describe('credentials in a Docker-style config.json', () => {
  let work: string;
  let oldPath: string | undefined;

  beforeAll(async () => {
    work = tempDir('registry-creds');
    oldPath = process.env['PATH'];
  });

  afterAll(async () => {
    process.env['PATH'] = oldPath;
    await fs.rm(work, { recursive: true, force: true });
  });

  it('finds entries by host whatever their spelling, and Docker Hub under its index URL', async () => {
    const file = path.join(work, 'keys.json');
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    await fs.writeFile(
      file,
      JSON.stringify({
        auths: {
          'https://index.docker.io/v1/': { auth: b64('hubuser:hubpass') },
          'http://registry.lan:5000/v2/': { auth: b64('lan:pw:with:colons') },
          'plain.example': { username: 'u', password: 'p' },
        },
      }),
    );
    const store = new DockerCredentialStore(file);
    expect(await store.get('docker.io')).toEqual({ username: 'hubuser', password: 'hubpass' });
    expect(await store.get('registry.lan:5000')).toEqual({ username: 'lan', password: 'pw:with:colons' });
    expect(await store.get('plain.example')).toEqual({ username: 'u', password: 'p' });
    expect(await store.get('registry.lan')).toBeUndefined();
    await store.set('docker.io', { username: 'new', password: 'x' });
    const written = JSON.parse(await fs.readFile(file, 'utf8'));
    expect(Object.keys(written.auths).sort()).toEqual([
      'http://registry.lan:5000/v2/',
      'https://index.docker.io/v1/',
      'plain.example',
    ]);
  });

  it('asks a credential helper named by credHelpers (a docker-credential-* program on PATH)', async () => {
    const bin = path.join(work, 'bin');
    await fs.mkdir(bin);
    await fs.writeFile(
      path.join(bin, 'docker-credential-corraltest'),
      '#!/bin/sh\nread server\nif [ "$server" = "helped.lan" ]; then echo \'{"ServerURL":"helped.lan","Username":"hu","Secret":"hs"}\'; else echo "credentials not found in native keychain"; exit 1; fi\n',
      { mode: 0o755 },
    );
    process.env['PATH'] = `${bin}:${oldPath}`;
    const file = path.join(work, 'helpers.json');
    await fs.writeFile(
      file,
      JSON.stringify({ credHelpers: { 'helped.lan': 'corraltest', 'other.lan': 'corraltest' } }),
    );
    const store = new DockerCredentialStore(file);
    expect(await store.get('helped.lan')).toEqual({ username: 'hu', password: 'hs' });
    expect(await store.get('other.lan')).toBeUndefined();
    await fs.writeFile(file, JSON.stringify({ credsStore: 'missing-helper' }));
    const err = await store.get('x.lan').catch((e) => e);
    expect(isRegistryError(err, 'UNAUTHORIZED')).toBe(true);
    expect(err.message).toContain('docker-credential-missing-helper');
  });
});

describe('progress renderer', () => {
  const ev = (
    id: string,
    status: ProgressEvent['status'],
    current: number,
    total = 2_000_000,
  ): ProgressEvent => ({
    id,
    digest: `sha256:${id}`,
    kind: 'layer',
    status,
    current,
    total,
  });

  function collect(): { out: PassThrough; text: () => string } {
    const out = new PassThrough();
    let text = '';
    out.on('data', (d: Buffer) => {
      text += d.toString();
    });
    return { out, text: () => text };
  }

  it('prints one plain line per status change when not on a terminal', () => {
    const { out, text } = collect();
    const r = createProgressRenderer(out, { tty: false });
    r.update(ev('aaaaaaaaaaaa', 'waiting', 0));
    r.update(ev('aaaaaaaaaaaa', 'downloading', 0));
    r.update(ev('aaaaaaaaaaaa', 'downloading', 1_000_000));
    r.update(ev('aaaaaaaaaaaa', 'done', 2_000_000));
    r.update(ev('bbbbbbbbbbbb', 'exists', 0));
    r.finish();
    expect(text()).toBe(
      'aaaaaaaaaaaa: Waiting\naaaaaaaaaaaa: Downloading 2.0MB\naaaaaaaaaaaa: Complete 2.0MB\nbbbbbbbbbbbb: Already exists\n',
    );
  });

  it('draws one bar per layer on a terminal and redraws them in place', () => {
    const { out, text } = collect();
    const r = createProgressRenderer(out, { tty: true, barWidth: 10, intervalMs: 0 });
    r.update(ev('aaaaaaaaaaaa', 'downloading', 1_000_000));
    r.update(ev('bbbbbbbbbbbb', 'downloading', 500_000));
    r.update(ev('aaaaaaaaaaaa', 'done', 2_000_000));
    r.finish();
    const frames = text().split('\x1b[2A');
    expect(frames.length).toBeGreaterThan(1);
    const last = frames.at(-1)!;
    expect(last).toContain('aaaaaaaaaaaa: Complete');
    expect(last).toContain('bbbbbbbbbbbb: Downloading [=>        ] 500kB/2.0MB');
    expect(text()).toContain('aaaaaaaaaaaa: Downloading [====>     ] 1.0MB/2.0MB');
  });

  it('formats sizes in decimal units like docker', () => {
    expect(formatBytes(999)).toBe('999B');
    expect(formatBytes(1500)).toBe('1.5kB');
    expect(formatBytes(123_456_789)).toBe('123MB');
  });
});
