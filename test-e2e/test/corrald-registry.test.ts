import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { Cleanups, exec, until } from '@corral/testkit';
import bcrypt from 'bcryptjs';
import type Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCorrald } from './corrald.js';
import { type Registry, startRegistry } from './helpers.js';

// docker push and pull through corrald against a local registry server (loopback only), with
// the docker CLI and with dockerode's progress stream.
const c = new Cleanups();
let registry: Registry;
let env: NodeJS.ProcessEnv;
let dockerode: Docker;
let daemonConfig = '';
let dir = '';

beforeAll(async () => {
  dir = c.tempDir('corrald-registry');
  registry = await startRegistry(join(dir, 'registry'));
  c.add(() => registry.stop());
  ({ env, dockerode, daemonConfig } = await startCorrald(c, dir));
});
afterAll(() => c.run());

const docker = async (args: string[]) => {
  const r = await exec('docker', args, { env });
  if (r.status !== 0) throw new Error(`docker ${args.join(' ')}: ${r.stderr}`);
  return r;
};

describe('corrald with a registry', () => {
  it('pushes with the docker CLI, removes, pulls back and runs', async () => {
    const ref = `${registry.host}/corral/bb:1`;
    await docker(['tag', 'busybox', ref]);
    const push = await docker(['push', ref]);
    expect(push.stdout).toMatch(/digest: sha256:[0-9a-f]{64}/);
    await docker(['rmi', ref]);
    const pull = await docker(['pull', ref]);
    expect(pull.stdout).toContain('Digest: sha256:');
    expect((await docker(['run', '--rm', '--network', 'none', ref, 'echo', 'pulled'])).out).toBe('pulled');
  });

  it('pulls with dockerode and follows its progress stream', async () => {
    const ref = `${registry.host}/corral/bb:1`;
    await docker(['rmi', '-f', ref]);
    const stream = await dockerode.pull(ref);
    const events: { status?: string; error?: string }[] = await new Promise((resolve, reject) =>
      dockerode.modem.followProgress(stream, (err: Error | null, out: { status?: string }[]) =>
        err ? reject(err) : resolve(out),
      ),
    );
    expect(events.some((e) => e.error)).toBe(false);
    // rmi -f of a name the image shares with busybox only untags it (Docker's rule), so its
    // layer is still here: Docker says so per layer, then that the name is new.
    const statuses = events.map((e) => e.status);
    expect(
      statuses.some((s) => s === 'Pull complete' || s === 'Already exists'),
      String(statuses),
    ).toBe(true);
    expect(statuses).toContain(`Status: Downloaded newer image for ${ref}`);
    expect((await dockerode.getImage(ref).inspect()).Id).toMatch(/^sha256:/);
  });

  it('reports a missing image as an error in the stream', async () => {
    const r = await exec('docker', ['pull', `${registry.host}/corral/none:1`], { env });
    expect(r.status).toBe(1);
    expect(r.stderr.length).toBeGreaterThan(0);
  });
});

describe('corrald with a registry that asks for credentials (htpasswd)', () => {
  const password = 'e2e pass:word';
  let secured: Registry;
  let authEnv: NodeJS.ProcessEnv;
  beforeAll(async () => {
    secured = await startRegistry(join(dir, 'registry-auth'), `alice:${bcrypt.hashSync(password, 5)}\n`);
    c.add(() => secured.stop());
    authEnv = { ...env, DOCKER_CONFIG: join(dir, 'auth-docker-config') };
  });
  const dockerAuth = (args: string[], input?: string) => exec('docker', args, { env: authEnv, input });

  it("refuses wrong credentials at docker login with 401 and the registry's words, keeping nothing", async () => {
    const r = await dockerAuth(['login', '-u', 'alice', '--password-stdin', secured.host], 'not it\n');
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(
      `Error response from daemon: login attempt to http://${secured.host}/v2/ failed with status: 401 Unauthorized`,
    );
    expect(existsSync(join(dir, 'auth-docker-config', 'config.json'))).toBe(false);
    // The API's own status, as dockerd answers it.
    const res = await fetchAuth({ username: 'alice', password: 'nope', serveraddress: secured.host });
    expect(res.status).toBe(401);
    expect(JSON.parse(res.body).message).toContain('401 Unauthorized');
  });

  it("pushes only after docker login, then pushes and pulls with the client's credentials (X-Registry-Auth)", async () => {
    const ref = `${secured.host}/team/bb:1`;
    await docker(['tag', 'busybox', ref]);
    const anon = await dockerAuth(['push', ref]);
    expect(anon.status).toBe(1);
    expect(anon.stderr).toContain(secured.host);

    const login = await dockerAuth(
      ['login', '-u', 'alice', '--password-stdin', secured.host],
      `${password}\n`,
    );
    expect(login.status, login.stderr).toBe(0);
    expect(login.stdout).toContain('Login Succeeded');
    // The client keeps them (its config.json); the daemon keeps none.
    const kept = JSON.parse(readFileSync(join(dir, 'auth-docker-config', 'config.json'), 'utf8'));
    expect(Buffer.from(kept.auths[secured.host].auth, 'base64').toString()).toBe(`alice:${password}`);
    expect(existsSync(join(daemonConfig, 'config.json'))).toBe(false);

    const push = await dockerAuth(['push', ref]);
    expect(push.status, push.stderr).toBe(0);
    expect(push.stdout).toMatch(/digest: sha256:[0-9a-f]{64}/);
    await docker(['rmi', ref]);
    const pull = await dockerAuth(['pull', ref]);
    expect(pull.status, pull.stderr).toBe(0);
    expect(pull.stdout).toContain('Digest: sha256:');
    expect((await docker(['run', '--rm', '--network', 'none', ref, 'echo', 'authorized'])).out).toBe(
      'authorized',
    );

    // Without the client's credentials the daemon has none of its own to pull with.
    await docker(['rmi', ref]);
    const stranger = await docker(['pull', ref]).catch((e: Error) => e);
    expect(stranger).toBeInstanceOf(Error);
    expect(String(stranger)).toContain(secured.host);
  });

  it('pulls with dockerode and its authconfig (X-Registry-Auth); wrong credentials fail in the stream', async () => {
    const ref = `${secured.host}/team/bb:1`;
    // followProgress hands over every line; a failure is a line with `error`.
    const follow = (stream: NodeJS.ReadableStream) =>
      new Promise<{ status?: string; error?: string }[]>((resolve, reject) =>
        dockerode.modem.followProgress(stream, (err: Error | null, out: { status?: string }[]) =>
          err ? reject(err) : resolve(out),
        ),
      );
    const wrong = await follow(
      await dockerode.pull(ref, {
        authconfig: { username: 'alice', password: 'nope', serveraddress: secured.host },
      }),
    );
    expect(wrong.at(-1)?.error).toContain(secured.host);
    expect(
      await dockerode
        .getImage(ref)
        .inspect()
        .catch((e: Error) => e),
    ).toBeInstanceOf(Error);
    const events = await follow(
      await dockerode.pull(ref, { authconfig: { username: 'alice', password, serveraddress: secured.host } }),
    );
    expect(events.map((e) => e.status)).toContain(`Status: Downloaded newer image for ${ref}`);
    expect((await dockerode.getImage(ref).inspect()).Id).toMatch(/^sha256:/);
  });
});

/** POST /auth on corrald's socket: status and body. */
function fetchAuth(body: unknown): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const socketPath = String(env.DOCKER_HOST).replace(/^unix:\/\//, '');
    const data = JSON.stringify(body);
    const headers = { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) };
    const req = request({ socketPath, path: '/v1.47/auth', method: 'POST', headers }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    req.end(data);
  });
}

describe('a client that goes away mid-pull', () => {
  it('ends the pull: no image, no temp file in the store, and a later pull completes', async () => {
    // An image with one large incompressible layer, pushed to the local registry.
    const ref = `${registry.host}/corral/big:1`;
    await docker([
      'run',
      '--name',
      'big-maker',
      '--network',
      'none',
      'busybox',
      'sh',
      '-c',
      'head -c 100000000 /dev/urandom > /big',
    ]);
    await docker(['commit', 'big-maker', ref]);
    await docker(['rm', 'big-maker']);
    await docker(['push', ref]);
    await docker(['rmi', ref]);
    const storeTmp = join(dir, 'root', 'image', 'tmp');
    const socketPath = String(env.DOCKER_HOST).replace(/^unix:\/\//, '');
    // The pull through the API, its request destroyed at the first bytes of the layer.
    const seen = await new Promise<string>((resolve, reject) => {
      const req = request(
        { socketPath, path: `/v1.47/images/create?fromImage=${encodeURIComponent(ref)}`, method: 'POST' },
        (res) => {
          let text = '';
          res.on('data', (b) => {
            text += b;
            if (text.includes('"Downloading"')) {
              req.destroy();
              resolve(text);
            }
          });
          res.on('end', () => resolve(text));
        },
      );
      req.on('error', () => {});
      req.on('close', () => resolve(''));
      req.end();
      setTimeout(() => reject(new Error('no progress from the pull')), 60_000);
    });
    expect(seen).toContain('"Downloading"');
    // The daemon ends the pull: nothing half made is left once it has.
    await until(
      async () => {
        const tmp = existsSync(storeTmp) ? readdirSync(storeTmp) : [];
        return tmp.length === 0;
      },
      'the store without temp files',
      30_000,
    );
    // Long enough for the whole pull, had it gone on (100 MB over loopback takes well under this).
    await new Promise((r) => setTimeout(r, 8000));
    expect(existsSync(storeTmp) ? readdirSync(storeTmp) : []).toEqual([]);
    const images = await docker(['images', '--format', '{{.Repository}}:{{.Tag}}']);
    expect(images.out.split('\n')).not.toContain(ref);
    const r = await exec('docker', ['image', 'inspect', ref], { env });
    expect(r.status).toBe(1);
    // The next pull is whole.
    expect((await docker(['pull', ref])).stdout).toContain('Digest: sha256:');
    expect((await docker(['run', '--rm', '--network', 'none', ref, 'wc', '-c', '/big'])).out).toBe(
      '100000000 /big',
    );
    await docker(['rmi', ref]);
  });
});
