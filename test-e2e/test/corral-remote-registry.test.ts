// `corral --host` (the CLI as corrald's client) against a registry that asks for credentials:
// login is checked by corrald and kept by the client (its DOCKER_CONFIG), and each pull and
// push sends them (X-Registry-Auth), as the docker CLI does with dockerd; corrald keeps none.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Cleanups, corralBin, exec } from '@corral/testkit';
import bcrypt from 'bcryptjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Daemon, startDaemon } from '../../apps/daemon/test/daemon.js';
import { type Registry, startRegistry } from './helpers.js';

const c = new Cleanups();
const password = 'remote pass:word';
let d: Daemon;
let registry: Registry;
let dir = '';

beforeAll(async () => {
  dir = c.tempDir('corral-remote-registry');
  registry = await startRegistry(join(dir, 'registry'), `alice:${bcrypt.hashSync(password, 5)}\n`);
  c.add(() => registry.stop());
  d = await startDaemon(c);
});
afterAll(() => c.run());

/** corral --host with a client credentials folder of its own. */
const corral = (args: string[], config: string, input?: string) =>
  exec(process.execPath, ['--', corralBin, '--host', `unix://${d.socket}`, ...args], {
    env: { ...process.env, DOCKER_CONFIG: join(dir, config) },
    input,
  });

describe('corral --host with a registry that asks for credentials', () => {
  it('refuses wrong credentials at login and keeps nothing', async () => {
    const r = await corral(['login', '-u', 'alice', '--password-stdin', registry.host], 'client', 'not it\n');
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('401');
    expect(existsSync(join(dir, 'client', 'config.json'))).toBe(false);
  });

  it('logs in (kept by the client), then pushes and pulls with those credentials', async () => {
    const ref = `${registry.host}/team/bb:1`;
    expect((await corral(['tag', 'busybox', ref], 'client')).status).toBe(0);
    const anon = await corral(['push', ref], 'client');
    expect(anon.status).toBe(1);
    expect(anon.stderr).toContain(registry.host);

    const login = await corral(
      ['login', '-u', 'alice', '--password-stdin', registry.host],
      'client',
      `${password}\n`,
    );
    expect(login.stdout, login.stderr).toBe('Login Succeeded\n');
    const kept = JSON.parse(readFileSync(join(dir, 'client', 'config.json'), 'utf8'));
    expect(Buffer.from(kept.auths[registry.host].auth, 'base64').toString()).toBe(`alice:${password}`);

    const push = await corral(['push', ref], 'client');
    expect(push.status, push.stderr).toBe(0);
    expect(push.stdout).toMatch(/^Digest: sha256:[0-9a-f]{64}\n$/);
    expect((await corral(['rmi', ref], 'client')).status).toBe(0);
    const pull = await corral(['pull', ref], 'client');
    expect(pull.status, pull.stderr).toBe(0);
    expect(pull.stdout).toBe(push.stdout);
    const run = await corral(['run', '--rm', '--network', 'none', ref, 'echo', 'authorized'], 'client');
    expect(run.stdout).toBe('authorized\n');

    // Another client, without credentials: corrald has none of its own to pull with.
    expect((await corral(['rmi', ref], 'client')).status).toBe(0);
    const stranger = await corral(['pull', ref], 'stranger');
    expect(stranger.status).toBe(1);
    expect(stranger.stderr).toContain(registry.host);
  });
});
