import { existsSync, readFileSync } from 'node:fs';
import { posix } from 'node:path';
import { type MountInfo, readMountInfo } from '@corral/sys';
import { CgroupError } from './errors.js';
import { parseCpuList } from './units.js';

/** What the host mounts: only v1 hierarchies, only the unified v2 tree, or v1 controllers plus a v2 mount. */
export type CgroupMode = 'v1' | 'v2' | 'hybrid';

/** A mounted v1 hierarchy: its controllers (`cpu`, `name=systemd`, ...) and where it is mounted. */
export interface V1Mount {
  controllers: string[];
  mountPoint: string;
  /** The cgroup path that the mount shows at its mount point (`/` unless bind-mounted or namespaced). */
  root: string;
}

function knownSubsystems(): Set<string> {
  try {
    const lines = readFileSync('/proc/cgroups', 'utf8').split('\n').slice(1);
    return new Set(lines.map((l) => l.split('\t')[0]).filter(Boolean));
  } catch {
    return new Set([
      'cpuset',
      'cpu',
      'cpuacct',
      'blkio',
      'memory',
      'devices',
      'freezer',
      'net_cls',
      'perf_event',
      'net_prio',
      'hugetlb',
      'pids',
      'rdma',
      'misc',
    ]);
  }
}

/** The v1 hierarchies in a mount table (default: ours), one entry per hierarchy. */
export function v1Mounts(mounts: MountInfo[] = readMountInfo()): V1Mount[] {
  const subsystems = knownSubsystems();
  const seen = new Map<string, V1Mount>();
  for (const m of mounts) {
    if (m.fsType !== 'cgroup') continue;
    const controllers = m.superOptions.split(',').filter((o) => subsystems.has(o) || o.startsWith('name='));
    if (controllers.length === 0) continue;
    const key = [...controllers].sort().join(',');
    // The same hierarchy may be mounted twice; keep the one that shows the most of it.
    const prev = seen.get(key);
    if (!prev || m.root.length < prev.root.length)
      seen.set(key, { controllers, mountPoint: m.mountPoint, root: m.root });
  }
  return [...seen.values()];
}

/** The cgroup2 mounts in a mount table. */
export function v2Mounts(mounts: MountInfo[] = readMountInfo()): MountInfo[] {
  return mounts.filter((m) => m.fsType === 'cgroup2');
}

/**
 * Whether the host is v1, v2 (unified only) or hybrid (v1 controllers plus a cgroup2 mount),
 * from /proc/self/mountinfo (or the given table).
 */
export function detectCgroupMode(mounts: MountInfo[] = readMountInfo()): CgroupMode {
  const v1 = v1Mounts(mounts).filter((h) => h.controllers.some((c) => !c.startsWith('name=')));
  const v2 = v2Mounts(mounts);
  if (v1.length > 0) return v2.length > 0 ? 'hybrid' : 'v1';
  if (v2.length > 0) return 'v2';
  throw new CgroupError(
    'NOCGROUPFS',
    'no cgroup filesystem is mounted (neither cgroup nor cgroup2 in /proc/self/mountinfo): mount one at /sys/fs/cgroup',
  );
}

/** One line of /proc/PID/cgroup: the hierarchy's controllers ('' for v2) and the cgroup path. */
export interface ProcCgroup {
  id: number;
  controllers: string[];
  path: string;
}

/** The cgroups a process is in, from /proc/PID/cgroup. */
export function readProcCgroups(pid: number | 'self' = 'self'): ProcCgroup[] {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/cgroup`, 'utf8');
  } catch (e) {
    throw new CgroupError(
      'ESRCH',
      `cannot read /proc/${pid}/cgroup: no such process (${(e as Error).message})`,
      undefined,
      { cause: e },
    );
  }
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const first = line.indexOf(':');
      const second = line.indexOf(':', first + 1);
      const controllers = line.slice(first + 1, second);
      return {
        id: Number(line.slice(0, first)),
        controllers: controllers ? controllers.split(',') : [],
        path: line.slice(second + 1),
      };
    });
}

/** True when cgroup path `a` is `b` or one of its ancestors. */
export function isAncestorOrSelf(a: string, b: string): boolean {
  if (a === '/' || a === b) return true;
  return b.startsWith(`${a}/`);
}

/** Joins a cgroup path onto its hierarchy's directory, or null when the mount does not show it. */
export function cgroupDir(mountPoint: string, mountRoot: string, path: string): string | null {
  if (!isAncestorOrSelf(mountRoot, path)) return null;
  const rel = mountRoot === '/' ? path : path.slice(mountRoot.length);
  return posix.join(mountPoint, rel || '/');
}

/** CPUs online on this host (from /sys/devices/system/cpu/online). */
export function onlineCpus(): number[] {
  try {
    return parseCpuList(readFileSync('/sys/devices/system/cpu/online', 'utf8'));
  } catch {
    return [0];
  }
}

/** Memory nodes online on this host. */
export function onlineMems(): number[] {
  const p = '/sys/devices/system/node/online';
  if (!existsSync(p)) return [0];
  return parseCpuList(readFileSync(p, 'utf8'), 'cpusetMems');
}

/** Total RAM of the host in bytes (MemTotal of /proc/meminfo). */
export function hostMemory(): number {
  const m = /^MemTotal:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

/** Clock ticks per second of /proc/stat and cpuacct.stat: USER_HZ, 100 on every Linux ABI Node runs on. */
export const USER_HZ = 100;

/** Total CPU time of the host in ns since boot, the `system_cpu_usage` of docker stats. */
export function hostCpuTime(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0];
  // cpu  user nice system idle iowait irq softirq steal (guest time is already in user).
  const ticks = line
    .split(/\s+/)
    .slice(1, 9)
    .reduce((sum, v) => sum + Number(v), 0);
  return ticks * (1e9 / USER_HZ);
}
