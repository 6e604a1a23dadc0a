import { existsSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  CgroupV1,
  cpuPercent,
  detectCgroupMode,
  openCgroup,
  readProcCgroups,
  v1Mounts,
  v2Mounts,
} from '../src/index.js';
import { type Backend, conformance } from './conformance.js';
import { alive, Scope, sleep, until } from './helpers.js';

const MiB = 1024 * 1024;
const hasV1 = (() => {
  try {
    return v1Mounts().some((m) => m.controllers.includes('memory'));
  } catch {
    return false;
  }
})();

conformance('v1 backend (real cgroups)', (): Backend | null =>
  hasV1
    ? {
        real: true,
        open: (_scope, name, opts) => openCgroup({ path: name, backend: 'v1', ...opts }),
        limits: {
          apply: {
            memory: 64 * MiB,
            memoryReservation: 32 * MiB,
            cpuShares: 512,
            cpus: 0.5,
            cpusetCpus: '0',
            pidsLimit: 20,
            blkioWeight: 300,
          },
          readBack: {
            memory: 64 * MiB,
            memorySwap: 128 * MiB,
            memoryReservation: 32 * MiB,
            cpuShares: 512,
            cpuQuota: 50_000,
            cpuPeriod: 100_000,
            cpusetCpus: '0',
            pidsLimit: 20,
            blkioWeight: 300,
          },
        },
      }
    : null,
);

const run = hasV1 ? it : it.skip;

describe('v1 backend enforces limits (real cgroups)', () => {
  const scope = new Scope();
  afterEach(() => scope.cleanup());
  const make = () => {
    const cg = scope.track(openCgroup({ path: scope.name(), backend: 'v1' }));
    cg.create();
    return cg;
  };

  run('lives beneath our own cgroup in every hierarchy', () => {
    const cg = make();
    expect(cg).toBeInstanceOf(CgroupV1);
    const own = readProcCgroups('self');
    for (const [hierarchy, path] of Object.entries(cg.paths)) {
      const mine = own.find((c) => c.controllers.join(',') === hierarchy)!;
      expect(path.startsWith(`${mine.path === '/' ? '' : mine.path}/corral-test-`)).toBe(true);
    }
    // cpu and cpuacct are separate mounts on these hosts: both get a directory.
    expect(Object.keys(cg.dirs)).toEqual(
      expect.arrayContaining(['cpu', 'cpuacct', 'memory', 'pids', 'freezer', 'cpuset']),
    );
  });

  run(
    'a process allocating past 32m is OOM-killed; we and our other processes are fine; remove cleans up',
    async () => {
      const cg = make();
      cg.apply({ memory: 32 * MiB });
      expect(cg.oomKills()).toBe(0);
      const bystander = scope.held('exec sleep 60');
      // One process that fills a 64 MiB buffer: dd reads a whole block at once.
      const p = scope.held('exec dd if=/dev/zero of=/dev/null bs=64M count=1');
      cg.addProcess(p.pid);
      p.release();
      const { code, signal } = await p.exited;
      expect({ code, signal }).toEqual({ code: null, signal: 'SIGKILL' });
      const stats = cg.stats();
      expect(stats.memory.oomKills).toBe(1);
      expect(cg.oomKills()).toBe(1);
      expect(stats.memory.limit).toBe(32 * MiB);
      expect(stats.memory.maxUsage).toBeGreaterThan(16 * MiB);
      expect(alive(bystander.pid)).toBe(true);
      expect(alive(process.pid)).toBe(true);
      await cg.killAll(); // the pipe's other ends, if still there
      await cg.remove();
      expect(cg.exists()).toBe(false);
    },
  );

  run('pids limit 10 makes a fork loop fail while the host is unaffected', async () => {
    const cg = make();
    cg.apply({ pidsLimit: 10 });
    const p = scope.held(
      'i=0; while [ $i -lt 40 ]; do sleep 60 >/dev/null 2>&1 & i=$((i+1)); done; echo done',
    );
    cg.addProcess(p.pid);
    p.release();
    const { code } = await p.exited;
    await p.closed;
    expect(code).not.toBe(0);
    expect(p.stdout()).not.toContain('done');
    expect(p.stderr()).toMatch(/fork/i);
    const stats = cg.stats();
    expect(stats.pids.limit).toBe(10);
    expect(stats.pids.current).toBeLessThanOrEqual(10);
    // Outside the cgroup forking still works.
    const outside = scope.held('echo fine');
    outside.release();
    expect((await outside.exited).code).toBe(0);
    await outside.closed;
    expect(outside.stdout()).toBe('fine\n');
  });

  run('cpus 0.5 holds a busy loop near half a core (wide band)', async () => {
    const cg = make();
    cg.apply({ cpus: '0.5' });
    const p = scope.held('while :; do :; done');
    cg.addProcess(p.pid);
    p.release();
    await sleep(300);
    const a = cg.stats();
    await sleep(2000);
    const b = cg.stats();
    // docker's CPU %: 100 is one full core. A wide band: the host may be busy with other work.
    const pct = cpuPercent(a, b);
    expect(pct).toBeGreaterThan(20);
    expect(pct).toBeLessThan(75);
    // CFS counts periods while the group runs; whether it was throttled depends on the host's load.
    expect(b.cpu.periods).toBeGreaterThan(a.cpu.periods);
    expect(b.cpu.throttledPeriods).toBeGreaterThanOrEqual(a.cpu.throttledPeriods);
    expect(b.cpu.user + b.cpu.system).toBeGreaterThan(0);
  });

  run('cpuset 0 pins the process to CPU 0', async () => {
    const cg = make();
    cg.apply({ cpusetCpus: '0' });
    const p = scope.held('exec sleep 60');
    cg.addProcess(p.pid);
    const status = readFileSync(`/proc/${p.pid}/status`, 'utf8');
    expect(/^Cpus_allowed_list:\s+(\S+)$/m.exec(status)?.[1]).toBe('0');
  });

  run('moves no process out of its own subtree', () => {
    // An absolute path outside our memory cgroup: the check fires before anything is created.
    const own = readProcCgroups('self').find((c) => c.controllers.includes('memory'))!;
    if (own.path === '/') return; // only meaningful where our memory cgroup is not the root
    const outside = openCgroup({ path: `/corral-test-outside-${process.pid}`, backend: 'v1' });
    const p = scope.held('exec sleep 60');
    expect(() => outside.addProcess(p.pid)).toThrow(
      /only moves processes deeper into their own cgroup subtree/,
    );
    expect(outside.exists()).toBe(false);
  });

  run('a relative parent nests beneath our cgroup and remove() takes the parents it made', async () => {
    const parent = scope.name();
    const cg = scope.track(openCgroup({ path: 'ctr', parent, backend: 'v1' }));
    cg.create();
    const memoryOwn = readProcCgroups('self').find((c) => c.controllers.includes('memory'))!.path;
    expect(cg.paths.memory).toBe(`${memoryOwn}/${parent}/ctr`);
    // cpuset parents we make get CPUs and memory nodes, or no task could join.
    const p = scope.held('exec sleep 60');
    cg.addProcess(p.pid);
    p.release();
    await cg.killAll();
    await cg.remove();
    expect(openCgroup({ path: parent, backend: 'v1' }).exists()).toBe(false);
  });

  run('renameTo gives the cgroup a new name with its processes and limits, in every hierarchy', async () => {
    const parked = make();
    parked.apply({ memory: 64 * MiB, pidsLimit: 30 });
    const p = scope.held('cat /proc/self/cgroup');
    await parked.addProcessAsync(p.pid);
    const to = scope.track(openCgroup({ path: scope.name(), backend: 'v1' }));
    parked.renameTo(to);
    expect([to.exists(), parked.exists()]).toEqual([true, false]);
    for (const dir of Object.values(parked.dirs)) expect(existsSync(dir)).toBe(false);
    expect(to.processes()).toEqual([p.pid]);
    expect(to.limits()).toMatchObject({ memory: 64 * MiB, pidsLimit: 30 });
    // The process itself sees the new name, in each hierarchy.
    p.release();
    await p.closed;
    for (const [hierarchy, path] of Object.entries(to.paths))
      expect(p.stdout()).toContain(`:${hierarchy.replace(/^systemd$/, 'name=systemd')}:${path}\n`);
    await to.remove();
    expect(to.exists()).toBe(false);
    for (const dir of Object.values(to.dirs)) expect(existsSync(dir)).toBe(false);
  });

  run('renameTo refuses another parent, a name taken and a v2 cgroup, and changes nothing', async () => {
    const parked = make();
    const p = scope.held('exec sleep 60');
    parked.addProcess(p.pid);
    const parent = scope.name();
    const elsewhere = scope.track(openCgroup({ path: 'ctr', parent, backend: 'v1' }));
    expect(() => parked.renameTo(elsewhere)).toThrow(expect.objectContaining({ code: 'EXDEV' }));
    expect(() => parked.renameTo(elsewhere)).toThrow(/only beneath its own parent/);
    const taken = make();
    expect(() => parked.renameTo(taken)).toThrow(expect.objectContaining({ code: 'EXISTS' }));
    if (v2Mounts().length) {
      const v2 = openCgroup({ path: scope.name(), backend: 'v2' });
      expect(() => parked.renameTo(v2)).toThrow(expect.objectContaining({ code: 'EXDEV' }));
      expect(() => v2.renameTo(parked)).toThrow(expect.objectContaining({ code: 'ENOTSUP' }));
    }
    expect([parked.exists(), elsewhere.exists(), parked.processes()]).toEqual([true, false, [p.pid]]);
    expect(taken.processes()).toEqual([]);
    // The kernel's own answer to a rename across parents, had the check not come first.
    expect(() => renameSync(parked.dirs.pids, join(taken.dirs.pids, 'moved'))).toThrow(/EIO/);
  });

  run('the host is detected as hybrid with v1 controllers', () => {
    expect(['hybrid', 'v1']).toContain(detectCgroupMode());
  });

  it.skipIf(!hasV1)('killAll stops a fork bomb that cannot outrun the freezer', async () => {
    const cg = make();
    cg.apply({ pidsLimit: 50 });
    // Each shell forks again as soon as its children end or a fork fails: the bomb stays at
    // the limit (one that gives up on a failed fork can die out before it is seen spreading).
    const p = scope.held('f() { while :; do f & f & wait; done; }; f');
    cg.addProcess(p.pid);
    p.release();
    // Forking at all is enough: on a loaded CI machine it was not seen past 10 within 15 s.
    await until(() => cg.processes().length > 1, 'the bomb to fork');
    await cg.killAll();
    expect(cg.processes()).toEqual([]);
  });
});
