// ps, events and update: the container's processes, usage and limits, through its cgroup.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { CgroupStats } from '@corral/cgroups';
import { parseBytes, parseMemorySwap } from '@corral/cgroups';
import { Runtime } from '../runtime.js';
import type { OciResources } from '../spec.js';
import { type FlagSpecs, type Globals, parseFlags, UsageError } from './args.js';
import { writeOut } from './out.js';
import { exactArgs } from './state.js';

export async function ps(g: Globals, argv: string[]): Promise<number> {
  const { flags, args } = parseFlags(argv, { format: { type: 'string', alias: ['f'] } }, true);
  if (args.length < 1) throw new UsageError('corral-runtime: "ps" requires a minimum of 1 argument');
  const [id, ...psArgs] = args;
  const format = (flags.format as string | undefined) ?? 'table';
  const pids = new Runtime({ root: g.root }).processes(id);
  if (format === 'json') {
    writeOut(`${JSON.stringify(pids)}\n`);
    return 0;
  }
  if (format !== 'table') throw new UsageError(`invalid format option: ${format}`);
  // As runc: the host's ps, keeping the lines whose PID column names a process of the container.
  const r = spawnSync('ps', psArgs.length ? psArgs : ['-ef'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ps: ${r.stderr || r.error?.message}`);
  const lines = r.stdout.split('\n');
  const column = lines[0].trim().split(/\s+/).indexOf('PID');
  if (column < 0) throw new Error("couldn't find PID field in ps output");
  const mine = new Set(pids);
  const out = [lines[0]];
  for (const line of lines.slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length > column && mine.has(Number(f[column]))) out.push(line);
  }
  writeOut(`${out.join('\n')}\n`);
  return 0;
}

/** Stats in the shape of runc's `events --stats` (libcontainer's types.Stats). */
export function runcStats(s: CgroupStats): Record<string, unknown> {
  return {
    cpu: {
      usage: { total: s.cpu.total, kernel: s.cpu.system, user: s.cpu.user },
      throttling: {
        periods: s.cpu.periods,
        throttled_periods: s.cpu.throttledPeriods,
        throttled_time: s.cpu.throttledTime,
      },
    },
    memory: {
      cache: s.memory.cache,
      usage: { limit: s.memory.limit, usage: s.memory.usage, max: s.memory.maxUsage, failcnt: 0 },
      raw: { total_inactive_file: s.memory.inactiveFile, oom_kill: s.memory.oomKills },
    },
    pids: { current: s.pids.current, ...(s.pids.limit !== null ? { limit: s.pids.limit } : {}) },
    blkio: {
      io_service_bytes_recursive: [
        { op: 'Read', value: s.blkio.read },
        { op: 'Write', value: s.blkio.write },
      ],
    },
  };
}

function parseDuration(s: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(s);
  if (!m) throw new UsageError(`invalid interval ${s}: use a duration such as 5s or 500ms`);
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'];
}

export async function events(g: Globals, argv: string[]): Promise<number> {
  const { flags, args } = parseFlags(argv, { stats: { type: 'bool' }, interval: { type: 'string' } });
  const [id] = exactArgs('events', args);
  const interval = parseDuration((flags.interval as string | undefined) ?? '5s');
  const rt = new Runtime({ root: g.root });
  const line = (type: string, data?: unknown) =>
    writeOut(`${JSON.stringify({ type, id, ...(data ? { data } : {}) })}\n`);
  if (rt.state(id).status === 'stopped') throw new Error(`container ${id} is not running`);
  if (flags.stats) {
    line('stats', runcStats(rt.stats(id)));
    return 0;
  }
  // Stats every interval and an oom event for each OOM kill, until the container stops.
  let ooms = rt.stats(id).memory.oomKills;
  const oomCheck = Math.min(interval, 500);
  let sinceStats = interval;
  while (rt.state(id).status !== 'stopped') {
    const s = rt.stats(id);
    for (; ooms < s.memory.oomKills; ooms++) line('oom');
    if (sinceStats >= interval) {
      line('stats', runcStats(s));
      sinceStats = 0;
    }
    await new Promise((r) => setTimeout(r, oomCheck));
    sinceStats += oomCheck;
  }
  return 0;
}

const UPDATE_FLAGS = {
  resources: { type: 'string', alias: ['r'] },
  'blkio-weight': { type: 'int' },
  'cpu-period': { type: 'string' },
  'cpu-quota': { type: 'string' },
  'cpu-share': { type: 'string' },
  'cpu-rt-period': { type: 'string' },
  'cpu-rt-runtime': { type: 'string' },
  'cpuset-cpus': { type: 'string' },
  'cpuset-mems': { type: 'string' },
  'kernel-memory': { type: 'string' },
  'kernel-memory-tcp': { type: 'string' },
  memory: { type: 'string' },
  'memory-reservation': { type: 'string' },
  'memory-swap': { type: 'string' },
  'pids-limit': { type: 'int' },
  'l3-cache-schema': { type: 'string' },
  'mem-bw-schema': { type: 'string' },
} satisfies FlagSpecs;

/** linux.resources from the flags of `update` (runc's names). */
function resourcesFromFlags(flags: Record<string, unknown>): OciResources {
  for (const f of ['l3-cache-schema', 'mem-bw-schema'])
    if (flags[f] !== undefined) throw new UsageError(`--${f}: Intel RDT is not supported by corral-runtime`);
  for (const f of ['kernel-memory', 'kernel-memory-tcp', 'cpu-rt-period', 'cpu-rt-runtime'])
    if (flags[f] !== undefined) throw new UsageError(`--${f} is not supported by corral-runtime`);
  const int = (f: string) => {
    const v = flags[f] as string | undefined;
    if (v === undefined) return undefined;
    if (!/^-?\d+$/.test(v)) throw new UsageError(`invalid value "${v}" for --${f}`);
    return Number(v);
  };
  const r: OciResources = {};
  const memory: NonNullable<OciResources['memory']> = {};
  if (flags.memory !== undefined) memory.limit = parseBytes(flags.memory as string);
  if (flags['memory-reservation'] !== undefined)
    memory.reservation = parseBytes(flags['memory-reservation'] as string, 'memoryReservation');
  if (flags['memory-swap'] !== undefined) memory.swap = parseMemorySwap(flags['memory-swap'] as string);
  if (Object.keys(memory).length) r.memory = memory;
  const cpu: NonNullable<OciResources['cpu']> = {};
  if (flags['cpu-share'] !== undefined) cpu.shares = int('cpu-share');
  if (flags['cpu-period'] !== undefined) cpu.period = int('cpu-period');
  if (flags['cpu-quota'] !== undefined) cpu.quota = int('cpu-quota');
  if (flags['cpuset-cpus'] !== undefined) cpu.cpus = flags['cpuset-cpus'] as string;
  if (flags['cpuset-mems'] !== undefined) cpu.mems = flags['cpuset-mems'] as string;
  if (Object.keys(cpu).length) r.cpu = cpu;
  if (flags['pids-limit'] !== undefined) r.pids = { limit: flags['pids-limit'] as number };
  if (flags['blkio-weight'] !== undefined) r.blockIO = { weight: flags['blkio-weight'] as number };
  return r;
}

export async function update(g: Globals, argv: string[]): Promise<number> {
  const { flags, args } = parseFlags(argv, UPDATE_FLAGS);
  const [id] = exactArgs('update', args);
  let resources: OciResources;
  if (flags.resources !== undefined) {
    const file = flags.resources as string;
    try {
      resources = JSON.parse(readFileSync(file === '-' ? 0 : file, 'utf8')) as OciResources;
    } catch (e) {
      throw new Error(`reading the resources ${file}: ${(e as Error).message}`);
    }
  } else {
    resources = resourcesFromFlags(flags);
  }
  new Runtime({ root: g.root }).update(id, resources);
  return 0;
}
