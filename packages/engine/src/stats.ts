import type { CgroupStats } from '@corral/cgroups';
import type { EngineContext } from './context.js';
import { EngineError } from './errors.js';
import { getRecord, runningRecord, sleep } from './lifecycle.js';

/** One reading of a container's usage with the one before it, as Docker's stats API gives it. */
export interface StatsSample {
  id: string;
  name: string;
  /** When this reading was taken. */
  read: string;
  stats: CgroupStats;
  /** The previous reading (CPU % is the difference between the two). */
  precpu: CgroupStats;
}

/** Live usage of a running container, from its cgroup. */
export function readStats(ctx: EngineContext, ref: string): { id: string; name: string; stats: CgroupStats } {
  const r = runningRecord(ctx, ref);
  const cgroup = ctx.runtime.cgroup(r.id);
  if (!cgroup) throw new EngineError('Unavailable', `container ${r.name} has no cgroup`);
  return { id: r.id, name: r.name, stats: cgroup.stats() };
}

export interface StatsStreamOptions {
  /** The containers asked for by name or id (each must exist and run); all running ones if absent. */
  refs?: readonly string[];
  /** One round and stop (Docker's stream=false / --no-stream). */
  once?: boolean;
  /** Time between rounds (default 1 s); the first round comes after `firstDelayMs` (0.5 s). */
  intervalMs?: number;
  firstDelayMs?: number;
  signal?: AbortSignal;
}

/**
 * Rounds of samples, each with the reading before it (`precpu`): a first reading is taken,
 * then one round after `firstDelayMs` and one every `intervalMs`. A named container that is
 * not running fails the stream (NotFound or Conflict).
 */
export async function* statsStream(
  ctx: EngineContext,
  options: StatsStreamOptions = {},
): AsyncGenerator<StatsSample[]> {
  const named = (options.refs?.length ?? 0) > 0;
  const refs = () =>
    named
      ? [...options.refs!]
      : ctx.records.ids().filter((id) => {
          const r = ctx.records.read(id);
          return r !== null && getRecord(ctx, id).state.status === 'running';
        });
  const previous = new Map<string, CgroupStats>();
  const sample = (): StatsSample[] => {
    const out: StatsSample[] = [];
    for (const ref of refs()) {
      let got: ReturnType<typeof readStats>;
      try {
        got = readStats(ctx, ref);
      } catch (e) {
        if (named) throw e; // a container asked for by name must exist and run
        continue; // it ended between the listing and the read
      }
      const precpu = previous.get(got.id) ?? got.stats;
      previous.set(got.id, got.stats);
      out.push({ ...got, read: new Date().toISOString(), precpu });
    }
    return out;
  };
  sample();
  await sleep(options.firstDelayMs ?? 500);
  for (;;) {
    const round = sample();
    yield round;
    if (options.once || options.signal?.aborted || (named && round.length === 0)) return;
    await sleep(options.intervalMs ?? 1000);
    if (options.signal?.aborted) return;
  }
}
