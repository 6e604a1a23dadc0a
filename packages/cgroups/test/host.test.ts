import type { MountInfo } from '@corral/sys';
import { describe, expect, it } from 'vitest';
import { CgroupError, detectCgroupMode, openCgroup, readProcCgroups, v1Mounts } from '../src/index.js';

const mount = (mountPoint: string, fsType: string, superOptions: string, root = '/'): MountInfo => ({
  id: 1,
  parentId: 0,
  root,
  mountPoint,
  options: 'rw',
  fsType,
  source: fsType,
  superOptions,
});
const v1 = [
  mount('/sys/fs/cgroup/cpu', 'cgroup', 'rw,cpu'),
  mount('/sys/fs/cgroup/cpuacct', 'cgroup', 'rw,cpuacct'),
  mount('/sys/fs/cgroup/memory', 'cgroup', 'rw,memory'),
  mount('/sys/fs/cgroup/systemd', 'cgroup', 'rw,xattr,name=systemd'),
];

describe('detectCgroupMode', () => {
  it('tells v1, v2 and hybrid mount tables apart', () => {
    expect(detectCgroupMode(v1)).toBe('v1');
    expect(detectCgroupMode([...v1, mount('/sys/fs/cgroup/unified', 'cgroup2', 'rw')])).toBe('hybrid');
    expect(detectCgroupMode([mount('/sys/fs/cgroup', 'cgroup2', 'rw,nsdelegate')])).toBe('v2');
    // Only a named hierarchy beside cgroup2 (systemd's "unified" layout without v1 controllers) is v2.
    expect(
      detectCgroupMode([
        mount('/sys/fs/cgroup/systemd', 'cgroup', 'rw,name=systemd'),
        mount('/sys/fs/cgroup', 'cgroup2', 'rw'),
      ]),
    ).toBe('v2');
    expect(() => detectCgroupMode([])).toThrow(CgroupError);
  });

  it('reads this host from /proc/self/mountinfo', () => {
    expect(['v1', 'v2', 'hybrid']).toContain(detectCgroupMode());
  });

  it('lists each v1 hierarchy with its controllers', () => {
    expect(v1Mounts(v1).map((m) => m.controllers)).toEqual([
      ['cpu'],
      ['cpuacct'],
      ['memory'],
      ['name=systemd'],
    ]);
  });
});

describe('placement', () => {
  it('reads our own cgroups', () => {
    const own = readProcCgroups('self');
    expect(own.length).toBeGreaterThan(0);
    for (const c of own) expect(c.path.startsWith('/')).toBe(true);
  });

  // v1 hierarchies exist only on v1 and hybrid hosts: on a v2 host the test is reported skipped.
  it.skipIf(detectCgroupMode() === 'v2')(
    'resolves relative paths beneath our own cgroup and absolute ones as given (v1)',
    () => {
      const own = readProcCgroups('self');
      const cg = openCgroup({ path: 'a/b', backend: 'v1' });
      for (const [hierarchy, path] of Object.entries(cg.paths)) {
        const mine = own.find((c) => c.controllers.join(',') === hierarchy)!.path;
        expect(path).toBe(`${mine === '/' ? '' : mine}/a/b`);
      }
      const abs = openCgroup({ path: '/x/y', backend: 'v1' });
      expect(new Set(Object.values(abs.paths))).toEqual(new Set(['/x/y']));
      expect(() => openCgroup({ path: 'c', parent: '/x', backend: 'v1' }).paths).not.toThrow();
      expect(() => openCgroup({ path: '/c', parent: '/x', backend: 'v1' })).toThrow(/absolute, so a parent/);
      expect(() => openCgroup({ path: 'c', backend: 'v3' as 'v1' })).toThrow(
        "unknown cgroup backend 'v3': use v1, v2 or auto",
      );
      expect(() => openCgroup({ path: 'c', backend: 'v1', root: '/tmp' })).toThrow(
        /root option applies to the v2 backend only/,
      );
    },
  );
});
