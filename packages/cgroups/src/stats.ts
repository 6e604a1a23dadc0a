import type { CgroupStats } from './types.js';

/**
 * CPU % between two samples, as `docker stats` shows it: the cgroup's CPU time over the
 * host's, times the online CPUs (so one busy core reads 100%).
 */
export function cpuPercent(prev: CgroupStats, cur: CgroupStats): number {
  const cpuDelta = cur.cpu.total - prev.cpu.total;
  const systemDelta = cur.cpu.systemUsage - prev.cpu.systemUsage;
  if (cpuDelta <= 0 || systemDelta <= 0) return 0;
  return (cpuDelta / systemDelta) * cur.cpu.onlineCpus * 100;
}

/** Memory in use without the page cache, the figure `docker stats` shows as MEM USAGE. */
export function memoryUsed(stats: CgroupStats): number {
  return Math.max(0, stats.memory.usage - stats.memory.cache);
}

/** MEM %: memory in use without the page cache over the limit. */
export function memoryPercent(stats: CgroupStats): number {
  if (stats.memory.limit <= 0) return 0;
  return (memoryUsed(stats) / stats.memory.limit) * 100;
}
