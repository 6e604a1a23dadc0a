// corral version, --version and info: what they print is read from this host (kernel, cgroup
// mounts) and from a data root with a container in each state.
import { readFileSync } from 'node:fs';
import { release } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Sandbox } from './helpers.js';

const s = new Sandbox();
afterAll(() => s.teardown());

/** The cgroup mode from /proc/self/mountinfo, as the test reads it (not as corral does). */
function hostCgroup(): string {
  const types = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' - ')[1]?.split(' ') ?? [])
    .filter(([type]) => type === 'cgroup' || type === 'cgroup2');
  const v1 = types.some(
    ([t, , opts]) =>
      t === 'cgroup' &&
      opts
        .split(',')
        .some(
          (o) =>
            !o.startsWith('name=') &&
            ['cpu', 'memory', 'pids', 'cpuset', 'blkio', 'devices', 'freezer'].includes(o),
        ),
  );
  const v2 = types.some(([t]) => t === 'cgroup2');
  return v1 ? (v2 ? '1 (hybrid)' : '1') : '2';
}

describe('corral version', () => {
  it('prints the client and the engine: versions, API, Node, kernel, cgroup version, storage driver', async () => {
    const r = await s.corral(['version']);
    expect(r.status).toBe(0);
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
    expect(r.out).toMatch(new RegExp(`Client:\\n Version: +${pkg.version.replaceAll('.', '\\.')}\\n`));
    expect(r.out).toMatch(/API version: +1\.47 \(minimum version 1\.24\)/);
    expect(r.out).toContain(process.version);
    expect(r.out).toMatch(new RegExp(`Kernel version: +${release().replaceAll('.', '\\.')}\\n`));
    expect(r.out).toMatch(new RegExp(`Cgroup version: +${hostCgroup().replace(/[()]/g, '\\$&')}\\n`));
    expect(r.out).toMatch(/Storage driver: +overlay/);
  });

  it('--version is one line; --format json has the same facts', async () => {
    const line = await s.corral(['--version']);
    expect(line.status).toBe(0);
    expect(line.out.trim().split('\n')).toHaveLength(1);
    expect(line.out).toContain(`kernel ${release()}`);
    const j = JSON.parse((await s.corral(['version', '--format', 'json'])).out);
    expect(j.server.kernelVersion).toBe(release());
    expect(j.server.node).toBe(process.version);
    expect(j.client.apiVersion).toBe(j.server.apiVersion);
    const bad = await s.corral(['version', '--format', 'yaml']);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain('yaml');
  });
});

describe('corral info', () => {
  beforeAll(async () => {
    expect((await s.corral(['create', '--name', 'made', 'busybox', 'true'])).status).toBe(0);
    expect((await s.corral(['run', '-d', '--name', 'up', 'busybox', 'sleep', '60'])).status).toBe(0);
    expect((await s.corral(['run', '--name', 'done', 'busybox', 'true'])).status).toBe(0);
  });

  it('counts containers by state and images, and names drivers, kernel, runtime and data root', async () => {
    const r = await s.corral(['info']);
    expect(r.status).toBe(0);
    expect(r.out).toMatch(/ Containers: 3\n {2}Running: 1\n {2}Paused: 0\n {2}Stopped: 2\n/);
    const images = (await s.corral(['images', '-q'])).out.trim().split('\n').filter(Boolean).length;
    expect(r.out).toContain(` Images: ${images}\n`);
    expect(r.out).toContain(' Storage Driver: overlay\n');
    expect(r.out).toContain(' Cgroup Driver: cgroupfs\n');
    expect(r.out).toContain(` Cgroup Version: ${hostCgroup()}\n`);
    expect(r.out).toContain(` Kernel Version: ${release()}\n`);
    expect(r.out).toContain(' Default Runtime: corral-runtime\n');
    expect(r.out).toContain(` Data Root: ${s.root}\n`);
  });

  it('follows a pause in its counts (--format json)', async () => {
    expect((await s.corral(['pause', 'up'])).status).toBe(0);
    const i = JSON.parse((await s.corral(['info', '--format', 'json'])).out);
    expect([i.containersRunning, i.containersPaused, i.containersStopped]).toEqual([0, 1, 2]);
    expect((await s.corral(['unpause', 'up'])).status).toBe(0);
  });
});
