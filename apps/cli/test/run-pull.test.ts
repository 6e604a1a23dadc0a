// `corral run` and `create` pull a missing image (--pull missing|always|never, --platform), from
// a registry of the test's own on loopback (Debian's docker-registry, the image package's
// helper): progress on a terminal, nothing in a pipe.
import { spawn } from 'node:child_process';
import { corralBin } from '@corral/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRegistry, type TestRegistry } from '../../../packages/image/test/registry-server.js';
import { Sandbox } from './helpers.js';

// Many real containers per test on a shared, loaded machine: a longer timeout than the default.
const s = new Sandbox();
let registry: TestRegistry;
let ref: string;

beforeAll(async () => {
  registry = await startRegistry();
  ref = `${registry.host}/pulled/bb:1`;
  // Push the embedded busybox under the registry's name, then forget it here.
  expect((await s.corral(['tag', 'busybox', ref])).status).toBe(0);
  expect((await s.corral(['push', ref])).status).toBe(0);
  expect((await s.corral(['rmi', ref])).status).toBe(0);
});
afterAll(async () => {
  await s.teardown();
  await registry?.stop();
});

const manifestGets = () =>
  registry.requests.filter((r) => r.startsWith('GET /v2/pulled/bb/manifests/')).length;

describe('run pulls a missing image', { timeout: 180_000 }, () => {
  it('pulls it by default and runs it; in a pipe nothing about the pull is printed', async () => {
    const before = manifestGets();
    const r = await s.corral(['run', '--rm', ref, 'echo', 'pulled and ran']);
    expect(r.status).toBe(0);
    expect(r.stdout).toBe('pulled and ran\n');
    expect(r.stderr).toBe('');
    expect(manifestGets()).toBeGreaterThan(before);
    expect((await s.corral(['images'])).out).toContain(`${registry.host}/pulled/bb`);
    // Now present: missing does not ask the registry again.
    const again = manifestGets();
    expect((await s.corral(['run', '--rm', ref, 'true'])).status).toBe(0);
    expect(manifestGets()).toBe(again);
  });

  it('--pull always asks the registry even when the image is here; never does not pull', async () => {
    const before = manifestGets();
    expect((await s.corral(['create', '--pull', 'always', '--name', 'always', ref, 'true'])).status).toBe(0);
    expect(manifestGets()).toBeGreaterThan(before);
    await s.corral(['rm', 'always']);
    expect((await s.corral(['rmi', ref])).status).toBe(0);
    const never = await s.corral(['run', '--rm', '--pull', 'never', ref, 'true']);
    expect(never.status).toBe(125);
    expect(never.stderr).toContain(`Unable to find image '${ref}' locally`);
    expect((await s.corral(['images'])).out).not.toContain('pulled/bb');
    expect((await s.corral(['run', '--rm', '--pull', 'sometimes', ref, 'true'])).stderr).toContain('--pull');
  });

  it('a name the registry does not have fails naming the pull, with nothing created', async () => {
    const r = await s.corral(['run', '--rm', `${registry.host}/pulled/none:1`, 'true']);
    expect(r.status).toBe(125);
    expect(r.stderr).toContain(
      `Unable to find image '${registry.host}/pulled/none:1' locally, and pulling it failed`,
    );
    expect((await s.corral(['ps', '-aq'])).out).toBe('');
  });

  it('--platform picks the image to pull; one the image lacks is refused', async () => {
    const ok = await s.corral(['run', '--rm', '--platform', 'linux/amd64', ref, 'true']);
    expect(ok.status).toBe(0);
    // Here for amd64 only: another platform is not run from it.
    const never = await s.corral([
      'run',
      '--rm',
      '--pull',
      'never',
      '--platform',
      'linux/arm64',
      ref,
      'true',
    ]);
    expect(never.status).toBe(125);
    expect(never.stderr).toContain('is here for linux/amd64, not linux/arm64');
    const again = manifestGets();
    const missing = await s.corral(['run', '--rm', '--platform', 'linux/arm64', ref, 'true']);
    expect(missing.status).toBe(125);
    expect(manifestGets()).toBeGreaterThan(again); // it asked the registry for one
    expect((await s.corral(['images'])).out).toContain(`${registry.host}/pulled/bb`);
    await s.corral(['rmi', ref]);
    const other = await s.corral(['run', '--rm', '--platform', 'linux/s390x', ref, 'true']);
    expect(other.status).toBe(125);
    expect(other.stderr).toMatch(/s390x/);
  });

  it("on a terminal the pull is shown (Docker's lines, the digest)", async () => {
    await s.corral(['rmi', ref]).catch(() => {});
    const cmd = [
      process.execPath,
      '--',
      corralBin,
      '--root',
      s.root,
      'run',
      '--rm',
      ref,
      'echo',
      'done',
    ].join(' ');
    const child = spawn('script', ['-qec', cmd, '/dev/null'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
    expect(code).toBe(0);
    expect(out).toContain(`Unable to find image '${ref}' locally`);
    expect(out).toMatch(/Digest: sha256:[0-9a-f]{64}/);
    expect(out).toContain('done');
  });
});
