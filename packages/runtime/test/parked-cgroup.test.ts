// An init started ahead and parked in a cgroup of its own (a pool's, CreateOptions.parkedCgroup):
// create renames that cgroup into the container's where the kernel allows it (v1, the same
// parent), so the start pays no move into a cgroup; elsewhere it moves the init and removes the
// parked cgroup. Either way the container's limits hold before its program runs, and a create
// that fails leaves neither cgroup behind.
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { type Cgroup, detectCgroupMode, openCgroup } from '@corral/cgroups';
import { until } from '@corral/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initWaitsForSpec, type OciSpec, Runtime, spawnInit } from '../dist/index.js';
import { bundleMaker, busyboxRootfs, collect, tempDir } from './helpers.js';

const tmp = tempDir('parked-cgroup');
const rootfs = join(tmp, 'rootfs');
const rt = new Runtime({ root: join(tmp, 'state') });
const bundle = bundleMaker(tmp, rootfs);
const made: Cgroup[] = [];
const v1 = detectCgroupMode() !== 'v2';
const MiB = 1024 * 1024;

beforeAll(() => {
  busyboxRootfs(rootfs);
});
afterAll(async () => {
  for (const id of rt.list()) await rt.delete(id, { force: true });
  for (const cg of made) await cg.remove().catch(() => {});
  rmSync(tmp, { recursive: true, force: true });
});

const name = (what: string) => `corral-test-${what}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;

/** An init started ahead, in a parking cgroup of its own beneath ours once it has loaded (as a pool does). */
async function parkedInit() {
  const init = spawnInit({ stdio: ['ignore', 'pipe', 'pipe'] });
  await until(() => initWaitsForSpec(init.pid), 'the init to load');
  const parked = openCgroup({ path: name('parked') });
  made.push(parked);
  parked.create();
  await parked.addProcessAsync(init.pid);
  return { init, parked };
}

/** The program prints its own cgroups, then the limits its cgroup namespace shows it. */
const limited = (cgroupsPath: string) => (s: OciSpec) => {
  s.linux!.namespaces!.push({ type: 'cgroup' });
  s.mounts!.push({ destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['ro'] });
  s.linux!.cgroupsPath = cgroupsPath;
  s.linux!.resources = { memory: { limit: 6 * MiB }, pids: { limit: 40 } };
};
const PROGRAM = [
  'cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max',
  'grep -c "^[0-9]*:[a-z]" /proc/self/cgroup',
  'grep -v "^0::" /proc/self/cgroup | grep -v ":/$" | wc -l',
].join('; ');

describe.runIf(v1)('an init parked in a cgroup (v1)', () => {
  it('gets the container cgroup by a rename, its limits in force before the program runs', async () => {
    const { init, parked } = await parkedInit();
    const cgroupsPath = name('ctr');
    const c = await rt.create('renamed', bundle(['sh', '-c', PROGRAM], limited(cgroupsPath)), {
      init,
      parkedCgroup: parked,
      nullStdin: true,
    });
    const cg = rt.cgroup('renamed')!;
    // The parked cgroup is the container's now: its folders renamed, the init never moved.
    expect([cg.exists(), parked.exists()]).toEqual([true, false]);
    expect(cg.processes()).toEqual([init.pid]);
    expect(cg.limits()).toMatchObject({ memory: 6 * MiB });
    const host = readFileSync(`/proc/${init.pid}/cgroup`, 'utf8');
    for (const path of Object.values(cg.paths)) expect(host).toContain(`:${path}\n`);
    expect(host).not.toContain('parked');
    const out = collect(c.stdout);
    await rt.start('renamed');
    expect(await c.wait()).toBe(0);
    // Its own limits, and every hierarchy's cgroup the root of its cgroup namespace.
    expect(out().split('\n')).toEqual([String(6 * MiB), '40', expect.stringMatching(/^[1-9]\d*$/), '0', '']);
    await rt.delete('renamed');
    expect(cg.exists()).toBe(false);
  });

  it('moves the init where a rename cannot go (another parent), and removes the parked cgroup', async () => {
    const { init, parked } = await parkedInit();
    const parent = name('parent');
    made.push(openCgroup({ path: parent }));
    const c = await rt.create('moved', bundle(['sh', '-c', PROGRAM], limited(`${parent}/ctr`)), {
      init,
      parkedCgroup: parked,
      nullStdin: true,
    });
    const cg = rt.cgroup('moved')!;
    expect([cg.exists(), parked.exists()]).toEqual([true, false]);
    expect(cg.processes()).toEqual([init.pid]);
    expect(Object.values(cg.paths).every((p) => p.endsWith(`/${parent}/ctr`))).toBe(true);
    const out = collect(c.stdout);
    await rt.start('moved');
    expect(await c.wait()).toBe(0);
    expect(out().split('\n').slice(0, 2)).toEqual([String(6 * MiB), '40']);
    await rt.delete('moved');
    expect(cg.exists()).toBe(false);
  });

  it('a create that fails after the rename leaves neither cgroup, nor the init', async () => {
    const { init, parked } = await parkedInit();
    const cgroupsPath = name('ctr');
    const bad = bundle(['true'], (s) => {
      s.linux!.cgroupsPath = cgroupsPath;
      s.linux!.resources = { cpu: { cpus: '0-4095' } };
    });
    await expect(rt.create('bad', bad, { init, parkedCgroup: parked, nullStdin: true })).rejects.toThrow(
      /not available/,
    );
    expect(parked.exists()).toBe(false);
    expect(openCgroup({ path: cgroupsPath }).exists()).toBe(false);
    expect(await init.wait()).not.toBe(0);
    expect(rt.list()).not.toContain('bad');
  });
});
