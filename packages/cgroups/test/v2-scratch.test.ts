import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type Cgroup,
  CgroupLimitError,
  CgroupV2,
  cpuPercent,
  memoryPercent,
  openCgroup,
  validateLimits,
} from '../src/index.js';
import { type Backend, conformance } from './conformance.js';
import { Scope } from './helpers.js';
import { ScratchV2Kernel } from './scratch-kernel.js';

const MiB = 1024 * 1024;

/** A scratch folder laid out like a v2 cgroupfs, with a stand-in kernel for it, stopped in teardown. */
function scratchKernel(
  scope: Scope,
  opts?: ConstructorParameters<typeof ScratchV2Kernel>[1],
): ScratchV2Kernel {
  const kernel = new ScratchV2Kernel(scope.tmp(), opts);
  scope.onCleanup(() => kernel.stop());
  return kernel;
}

let current: ScratchV2Kernel | undefined;
conformance(
  'v2 backend on a scratch v2 tree (kernel mocked: this host has no v2 controllers)',
  (): Backend => ({
    real: false,
    begin: (scope) => {
      current = scratchKernel(scope);
    },
    open: (_scope, name, opts) => openCgroup({ path: name, root: current!.root, ...opts }),
    created: () => current!.sync(),
    limits: {
      apply: {
        memory: 64 * MiB,
        memoryReservation: 32 * MiB,
        cpuShares: 512,
        cpus: 0.5,
        cpusetCpus: '0',
        pidsLimit: 20,
      },
      readBack: {
        memory: 64 * MiB,
        memorySwap: 128 * MiB,
        memoryReservation: 32 * MiB,
        // v2 keeps only cpu.weight (20 for 512 shares): reading back gives the shares of that weight.
        cpuShares: 501,
        cpuQuota: 50_000,
        cpuPeriod: 100_000,
        cpusetCpus: '0',
        pidsLimit: 20,
      },
    },
  }),
);

describe('v2 backend on a scratch v2 tree: kernel file formats (kernel mocked)', () => {
  const scope = new Scope();
  afterEach(() => scope.cleanup());
  const setup = (
    opts?: ConstructorParameters<typeof ScratchV2Kernel>[1],
  ): { kernel: ScratchV2Kernel; cg: Cgroup; f: (n: string) => string } => {
    const kernel = scratchKernel(scope, opts);
    const cg = scope.track(openCgroup({ path: scope.name(), root: kernel.root }));
    cg.create();
    kernel.sync();
    const dir = cg.dirs.unified;
    return { kernel, cg, f: (n) => readFileSync(join(dir, n), 'utf8').trim() };
  };

  it('picks v2 for a root folder and treats a plain folder as scratch', () => {
    const { cg } = setup();
    expect(cg).toBeInstanceOf(CgroupV2);
    expect((cg as CgroupV2).scratch).toBe(true);
    expect(cg.paths.unified).toMatch(/^\/corral-test-/);
  });

  it('writes limits in the v2 files with runc conversions', () => {
    const { cg, f } = setup();
    cg.apply({
      memory: 32 * MiB,
      memorySwap: 48 * MiB,
      memoryReservation: 8 * MiB,
      cpuShares: 1024,
      cpus: '1.5',
      cpusetCpus: '1',
      cpusetMems: '0',
      pidsLimit: 10,
      blkioWeight: 500,
    });
    expect(f('memory.max')).toBe(String(32 * MiB));
    expect(f('memory.swap.max')).toBe(String(16 * MiB)); // memory+swap minus memory
    expect(f('memory.low')).toBe(String(8 * MiB));
    expect(f('cpu.weight')).toBe('39'); // 1 + ((1024 - 2) * 9999) / 262142
    expect(f('cpu.max')).toBe('150000 100000');
    expect(f('cpuset.cpus')).toBe('1');
    expect(f('cpuset.mems')).toBe('0');
    expect(f('pids.max')).toBe('10');
    expect(f('io.weight')).toBe('default 4950'); // 1 + ((500 - 10) * 9999) / 990
    cg.apply({ memory: -1, memorySwap: -1, pidsLimit: 0, cpuQuota: -1 });
    expect(f('memory.max')).toBe('max');
    expect(f('memory.swap.max')).toBe('max');
    expect(f('pids.max')).toBe('max');
    expect(f('cpu.max')).toBe('max 100000');
    cg.apply({ cpuPeriod: 50_000 });
    expect(f('cpu.max')).toBe('max 50000');
  });

  it('reads usage from the documented formats, the same shape as v1', () => {
    const { cg } = setup();
    const dir = cg.dirs.unified;
    const w = (n: string, t: string) => writeFileSync(join(dir, n), t);
    cg.apply({ memory: 64 * MiB, pidsLimit: 10 });
    w('memory.current', `${40 * MiB}\n`);
    w('memory.peak', `${50 * MiB}\n`);
    w(
      'memory.stat',
      `anon ${30 * MiB}\nfile ${8 * MiB}\nkernel 1024\nshmem 0\ninactive_anon 0\nactive_anon ${30 * MiB}\ninactive_file ${6 * MiB}\nactive_file ${2 * MiB}\n`,
    );
    w('memory.events', 'low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n');
    w(
      'cpu.stat',
      'usage_usec 2000000\nuser_usec 1500000\nsystem_usec 500000\nnr_periods 20\nnr_throttled 5\nthrottled_usec 250000\nnr_bursts 0\nburst_usec 0\n',
    );
    w('pids.current', '3\n');
    w(
      'io.stat',
      '8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n8:16 rbytes=100 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n',
    );
    const s = cg.stats();
    expect(s.memory).toEqual({
      usage: 40 * MiB,
      limit: 64 * MiB,
      cache: 8 * MiB,
      inactiveFile: 6 * MiB,
      maxUsage: 50 * MiB,
      oomKills: 1,
    });
    expect(s.cpu).toMatchObject({
      total: 2e9,
      user: 1.5e9,
      system: 0.5e9,
      periods: 20,
      throttledPeriods: 5,
      throttledTime: 250e6,
    });
    expect(s.pids).toEqual({ current: 3, limit: 10 });
    expect(s.blkio).toEqual({ read: 4196, write: 8192 });
    expect(memoryPercent(s)).toBeCloseTo(50); // (40 - 8) / 64
    const later = { ...s, cpu: { ...s.cpu, total: s.cpu.total + 1e9, systemUsage: s.cpu.systemUsage + 2e9 } };
    expect(cpuPercent(s, later)).toBeCloseTo(50 * s.cpu.onlineCpus);
  });

  it('an OOM kill is counted and the cgroup is removed afterwards', async () => {
    const { kernel, cg } = setup();
    cg.apply({ memory: 32 * MiB });
    const p = scope.held('exec sleep 60');
    cg.addProcess(p.pid);
    p.release();
    kernel.oomKill(cg.dirs.unified);
    expect((await p.exited).signal).toBe('SIGKILL');
    expect(cg.stats().memory.oomKills).toBe(1);
    expect(cg.oomKills()).toBe(1);
    await cg.remove();
    expect(cg.exists()).toBe(false);
  });

  it('refuses limits for controllers the parent does not delegate, and cpus the tree lacks', () => {
    const { cg } = setup({ controllers: ['cpu', 'pids'], cpus: '0-3' });
    expect(cg.capabilities()).toMatchObject({
      backend: 'v2',
      controllers: ['cpu', 'pids'],
      cpus: [0, 1, 2, 3],
    });
    expect(() => cg.apply({ memory: 64 * MiB })).toThrow(/needs the memory cgroup controller/);
    expect(() => cg.apply({ cpusetCpus: '2' })).toThrow(/needs the cpuset cgroup controller/);
    expect(() => cg.apply({ blkioWeight: 100 })).toThrow(/needs the io cgroup controller/);
    let err: unknown;
    try {
      validateLimits({ cpusetCpus: '4-5' }, cg.capabilities());
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CgroupLimitError);
    expect((err as CgroupLimitError).field).toBe('cpusetCpus');
    expect((err as Error).message).toBe('Requested CPUs are not available - requested 4-5, available: 0-3');
    expect(cg.apply({ cpus: 4 })).toMatchObject({ cpuQuota: 400_000 });
    expect(() => cg.apply({ cpus: 4.5 })).toThrow(
      'Range of CPUs is from 0.01 to 4.00, as there are only 4 CPUs available (got 4.5)',
    );
  });

  it('parents it makes pass their controllers down, and go with remove()', async () => {
    const kernel = scratchKernel(scope);
    const cg = scope.track(openCgroup({ path: 'ctr', parent: 'corral/pod', root: kernel.root }));
    cg.create();
    kernel.sync();
    expect(cg.paths.unified).toBe('/corral/pod/ctr');
    expect(readFileSync(join(kernel.root, 'corral/cgroup.subtree_control'), 'utf8')).toBe(
      '+cpuset +cpu +io +memory +pids',
    );
    expect(readFileSync(join(kernel.root, 'corral/pod/cgroup.subtree_control'), 'utf8')).toBe(
      '+cpuset +cpu +io +memory +pids',
    );
    await cg.remove();
    expect(openCgroup({ path: 'corral', root: kernel.root }).exists()).toBe(false);
  });
});
