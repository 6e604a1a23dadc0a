import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { Cleanups, exec, runCorral, until } from '@corral/testkit';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Registry, startRegistry } from './helpers.js';

// docker push and pull through corrald against a local registry server (loopback only), with
// the docker CLI and with dockerode's progress stream.
const CORRALD = join(import.meta.dirname, '..', '..', 'apps', 'daemon', 'bin', 'corrald.js');
const c = new Cleanups();
let registry: Registry;
let env: NodeJS.ProcessEnv;
let dockerode: Docker;

beforeAll(async () => {
  const dir = c.tempDir('corrald-registry');
  registry = await startRegistry(join(dir, 'registry'));
  c.add(() => registry.stop());
  const socket = join(dir, 'corrald.sock');
  const child = spawn(
    process.execPath,
    [CORRALD, '-H', `unix://${socket}`, '--data-root', join(dir, 'root'), '--exec-root', join(dir, 'exec')],
    {
      stdio: 'ignore',
    },
  );
  const exited = new Promise((r) => child.once('exit', r));
  // After the daemon stops: the bridges and rules of this root's networks go too.
  c.add(() => runCorral(join(dir, 'root'), ['network', 'down']));
  c.add(async () => {
    child.kill('SIGTERM');
    await exited;
  });
  dockerode = new Docker({ socketPath: socket });
  await until(
    () =>
      dockerode.ping().then(
        () => true,
        () => false,
      ),
    'corrald',
    30_000,
  );
  env = { ...process.env, DOCKER_HOST: `unix://${socket}`, DOCKER_CONFIG: join(dir, 'docker-config') };
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
