// Docker's JSON as corrald answers it, read back into the engine's shapes that the commands
// print (the reverse of corrald's translate.ts and stats.ts).
import { isUtf8 } from 'node:buffer';
import type { ContainerSummary, LogEntry, StatsSample } from '@corral/engine';

// biome-ignore lint/suspicious/noExplicitAny: JSON of the API, read field by field
type Json = Record<string, any>;

const iso = (secs: number) => new Date(secs * 1000).toISOString();

/** A row of GET /containers/json as ps's summary. */
export function summaryOf(j: Json): ContainerSummary {
  const exited = /^Exited \((-?\d+)\)/.exec(j.Status ?? '');
  // Docker's State says paused and restarting; the engine's summary has the record's status.
  const state = j.State === 'paused' || j.State === 'restarting' ? 'running' : j.State;
  return {
    id: j.Id,
    name: String(j.Names?.[0] ?? '').replace(/^\//, ''),
    image: j.Image,
    command: j.Command ?? '',
    created: iso(j.Created ?? 0),
    status: j.Status ?? '',
    state,
    exitCode: exited ? Number(exited[1]) : null,
    ports: (j.Ports ?? []).map((p: Json) => ({
      hostIP: p.IP ?? '',
      hostPort: p.PublicPort ?? 0,
      containerPort: p.PrivatePort,
      protocol: p.Type ?? 'tcp',
    })),
    labels: j.Labels ?? {},
    mounts: j.Mounts ?? [],
  };
}

function cgroupStats(j: Json, cpu: Json, read: string) {
  const ms = j.memory_stats ?? {};
  const io = (op: string) =>
    (j.blkio_stats?.io_service_bytes_recursive ?? [])
      .filter((x: Json) => x.op?.toLowerCase() === op)
      .reduce((n: number, x: Json) => n + (x.value ?? 0), 0);
  return {
    read: Date.parse(read),
    memory: {
      usage: ms.usage ?? 0,
      limit: ms.limit ?? 0,
      cache: ms.stats?.cache ?? 0,
      inactiveFile: ms.stats?.inactive_file ?? 0,
      maxUsage: ms.max_usage ?? 0,
      oomKills: ms.failcnt ?? 0,
    },
    cpu: {
      total: cpu.cpu_usage?.total_usage ?? 0,
      user: cpu.cpu_usage?.usage_in_usermode ?? 0,
      system: cpu.cpu_usage?.usage_in_kernelmode ?? 0,
      periods: cpu.throttling_data?.periods ?? 0,
      throttledPeriods: cpu.throttling_data?.throttled_periods ?? 0,
      throttledTime: cpu.throttling_data?.throttled_time ?? 0,
      systemUsage: cpu.system_cpu_usage ?? 0,
      onlineCpus: cpu.online_cpus ?? 0,
    },
    pids: { current: j.pids_stats?.current ?? 0, limit: j.pids_stats?.limit ?? null },
    blkio: { read: io('read'), write: io('write') },
  };
}

/** One sample of GET /containers/{id}/stats as the engine's (CPU % from its precpu). */
export function sampleOf(j: Json): StatsSample {
  return {
    id: j.id,
    name: String(j.name ?? '').replace(/^\//, ''),
    read: j.read,
    stats: cgroupStats(j, j.cpu_stats ?? {}, j.read),
    precpu: cgroupStats(j, j.precpu_stats ?? {}, j.preread),
  };
}

/**
 * A log record as corrald sends it with timestamps (`TIME LOG`) as the engine's entry; bytes
 * that are not UTF-8 stay exact in `raw`.
 */
export function logEntryOf(bytes: Buffer, stream: 'stdout' | 'stderr'): LogEntry {
  const sp = bytes.indexOf(0x20);
  const time = sp < 0 ? '' : bytes.subarray(0, sp).toString();
  const rest = sp < 0 ? bytes : bytes.subarray(sp + 1);
  const entry: LogEntry = { time, log: rest.toString(), stream };
  if (!isUtf8(rest)) entry.raw = rest.toString('base64');
  return entry;
}

/** Docker's change kinds (0 modified, 1 added, 2 deleted) as the engine's. */
export const CHANGE_KINDS = ['modified', 'added', 'deleted'] as const;

/** `repo[:tag]` split as Docker's API takes it (a registry's port is not a tag). */
export function splitName(name: string): { repo: string; tag: string } {
  const at = name.indexOf('@');
  if (at >= 0) return { repo: name.slice(0, at), tag: name.slice(at + 1) };
  const colon = name.lastIndexOf(':');
  if (colon > name.lastIndexOf('/')) return { repo: name.slice(0, colon), tag: name.slice(colon + 1) };
  return { repo: name, tag: 'latest' };
}
