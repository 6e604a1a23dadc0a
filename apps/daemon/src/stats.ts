import type { ContainerRecord, StatsSample } from '@corral/engine';

type Cg = StatsSample['stats'];

function cpuJson(c: Cg | null) {
  return {
    cpu_usage: {
      total_usage: c?.cpu.total ?? 0,
      usage_in_kernelmode: c?.cpu.system ?? 0,
      usage_in_usermode: c?.cpu.user ?? 0,
    },
    system_cpu_usage: c?.cpu.systemUsage ?? 0,
    online_cpus: c?.cpu.onlineCpus ?? 0,
    throttling_data: {
      periods: c?.cpu.periods ?? 0,
      throttled_periods: c?.cpu.throttledPeriods ?? 0,
      throttled_time: c?.cpu.throttledTime ?? 0,
    },
  };
}

const ZERO = '0001-01-01T00:00:00Z';

/** One sample in Docker's stats JSON (cgroup v2 style memory stats). */
export function statsJson(r: ContainerRecord, s: StatsSample | null) {
  const c = s?.stats ?? null;
  return {
    read: s?.read ?? ZERO,
    preread: s ? new Date(s.precpu.read).toISOString() : ZERO,
    name: `/${r.name}`,
    id: r.id,
    num_procs: 0,
    pids_stats: c
      ? { current: c.pids.current, ...(c.pids.limit !== null ? { limit: c.pids.limit } : {}) }
      : {},
    blkio_stats: {
      io_service_bytes_recursive: c
        ? [
            { major: 0, minor: 0, op: 'read', value: c.blkio.read },
            { major: 0, minor: 0, op: 'write', value: c.blkio.write },
          ]
        : null,
    },
    cpu_stats: cpuJson(c),
    precpu_stats: cpuJson(s?.precpu ?? null),
    memory_stats: c
      ? {
          usage: c.memory.usage,
          max_usage: c.memory.maxUsage,
          limit: c.memory.limit,
          stats: {
            inactive_file: c.memory.inactiveFile,
            cache: c.memory.cache,
            total_inactive_file: c.memory.inactiveFile,
          },
          failcnt: c.memory.oomKills,
        }
      : {},
    networks: {},
  };
}
