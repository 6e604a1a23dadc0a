// Health checks (Docker's HEALTHCHECK, --health-*): a command run inside the container at an
// interval; its exit code says healthy (0) or not, `retries` failures in a row make the
// container unhealthy. Docker's daemon runs them; in corral the process that watches a
// detached container (the keeper) runs them for as long as the container runs.
import type { Readable } from 'node:stream';
import type { ProcessHandle } from './attach.js';
import type { EngineContext } from './context.js';
import { EngineError } from './errors.js';

/** Docker's HealthConfig: durations in nanoseconds, 0 for the default. */
export interface HealthConfig {
  /** `[]` inherits the image's, `["NONE"]` disables, `["CMD", ...]`, `["CMD-SHELL", cmd]`. */
  Test?: string[];
  Interval?: number;
  Timeout?: number;
  StartPeriod?: number;
  Retries?: number;
}

/** One probe's result (Docker's HealthcheckResult). */
export interface HealthResult {
  Start: string;
  End: string;
  ExitCode: number;
  Output: string;
}

/** State.Health as Docker shows it. */
export interface HealthState {
  Status: 'starting' | 'healthy' | 'unhealthy';
  FailingStreak: number;
  Log: HealthResult[];
}

const SECOND = 1e9;
const DEFAULTS = { Interval: 30 * SECOND, Timeout: 30 * SECOND, StartPeriod: 0, Retries: 3 };
/** Docker keeps the last 5 results and 4 KiB of each one's output. */
const MAX_LOG = 5;
const MAX_OUTPUT = 4096;

/** A Go-style duration (`30s`, `1m30s`, `500ms`) in nanoseconds, for --health-* flags. */
export function parseDuration(s: string, flag: string): number {
  const unit: Record<string, number> = { ns: 1, us: 1e3, µs: 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };
  const parts = [...s.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)];
  if (s === '0') return 0;
  if (!parts.length || parts.map((p) => p[0]).join('') !== s)
    throw new EngineError('InvalidArgument', `invalid ${flag} ${s}: a duration such as 30s, 1m30s or 500ms`);
  return Math.round(parts.reduce((n, p) => n + Number(p[1]) * unit[p[2]], 0));
}

/**
 * The container's health check: its own settings over the image's (Docker's merge: an empty
 * Test or a zero duration takes the image's). Null when there is none or it is disabled.
 */
export function resolveHealthcheck(
  own: HealthConfig | undefined,
  image: HealthConfig | undefined,
): HealthConfig | null {
  const test = own?.Test?.length ? own.Test : image?.Test;
  if (!test?.length || test[0] === 'NONE') return null;
  if (test[0] !== 'CMD' && test[0] !== 'CMD-SHELL')
    throw new EngineError(
      'InvalidArgument',
      `invalid health check ${JSON.stringify(test)}: CMD, CMD-SHELL or NONE first`,
    );
  if (test.length < 2) throw new EngineError('InvalidArgument', 'the health check has no command');
  const pick = (k: 'Interval' | 'Timeout' | 'StartPeriod' | 'Retries') => {
    const v = own?.[k] || image?.[k] || 0;
    if (!Number.isSafeInteger(v) || v < 0)
      throw new EngineError('InvalidArgument', `invalid health check ${k} ${v}: must not be negative`);
    if ((k === 'Interval' || k === 'Timeout') && v !== 0 && v < 1e6)
      throw new EngineError('InvalidArgument', `invalid health check ${k}: at least 1ms`);
    return v;
  };
  return {
    Test: [...test],
    Interval: pick('Interval'),
    Timeout: pick('Timeout'),
    StartPeriod: pick('StartPeriod'),
    Retries: pick('Retries'),
  };
}

/** The words `ps` adds to `Up ...`. */
export function healthSuffix(h: HealthState | undefined): string {
  if (!h) return '';
  return h.Status === 'starting' ? ' (health: starting)' : ` (${h.Status})`;
}

/** Runs a command in the container and gives its handle with stdout and stderr piped. */
export type HealthExec = (cmd: string[]) => Promise<ProcessHandle>;

function collect(stream: Readable | null, into: Buffer[], room: { left: number }): void {
  stream?.on('data', (d: Buffer) => {
    if (room.left <= 0) return;
    into.push(d.subarray(0, room.left));
    room.left -= d.length;
  });
}

async function probe(exec: HealthExec, cmd: string[], timeoutNs: number): Promise<HealthResult> {
  const start = new Date().toISOString();
  const chunks: Buffer[] = [];
  let exitCode: number;
  let timedOut = false;
  try {
    const h = await exec(cmd);
    const room = { left: MAX_OUTPUT };
    collect(h.stdout, chunks, room);
    collect(h.stderr, chunks, room);
    const timer = setTimeout(() => {
      timedOut = true;
      h.signal('SIGKILL');
    }, timeoutNs / 1e6);
    try {
      exitCode = await h.wait();
    } finally {
      clearTimeout(timer);
    }
  } catch (e) {
    chunks.push(Buffer.from((e as Error).message));
    exitCode = -1;
  }
  const output = timedOut
    ? `Health check exceeded timeout (${timeoutNs / SECOND}s)`
    : Buffer.concat(chunks).toString('utf8');
  return { Start: start, End: new Date().toISOString(), ExitCode: timedOut ? -1 : exitCode, Output: output };
}

/**
 * Starts the checks of a running container (none when it has no health check) and returns
 * the function that stops them, waiting for a probe in flight.
 */
export function startHealthChecks(ctx: EngineContext, id: string, exec: HealthExec): () => Promise<void> {
  const r = ctx.records.read(id);
  const hc = r?.config.healthcheck;
  if (!r || !hc?.Test?.length) return async () => {};
  const interval = hc.Interval || DEFAULTS.Interval;
  const timeout = hc.Timeout || DEFAULTS.Timeout;
  const retries = hc.Retries || DEFAULTS.Retries;
  const startPeriod = hc.StartPeriod || DEFAULTS.StartPeriod;
  const cmd = hc.Test[0] === 'CMD-SHELL' ? ['/bin/sh', '-c', hc.Test.slice(1).join(' ')] : hc.Test.slice(1);
  const startedAt = Date.now();
  const write = (change: (h: HealthState) => HealthState) => {
    let before: string | undefined;
    let after: string | undefined;
    try {
      ctx.records.update(id, (x) => {
        before = x.state.health?.Status;
        x.state.health = change(x.state.health ?? { Status: 'starting', FailingStreak: 0, Log: [] });
        after = x.state.health.Status;
      });
    } catch {
      return; // removed meanwhile
    }
    // Docker's events: a change to healthy or unhealthy (not the starting state of a start).
    if (after && after !== before && after !== 'starting')
      ctx.events.emit('container', `health_status: ${after}`, id, { name: r.name, image: r.image });
  };
  write(() => ({ Status: 'starting', FailingStreak: 0, Log: [] }));
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let inFlight: Promise<void> = Promise.resolve();
  const round = async () => {
    const result = await probe(exec, cmd, timeout);
    if (stopped) return;
    write((h) => {
      const Log = [...h.Log, result].slice(-MAX_LOG);
      if (result.ExitCode === 0) return { Status: 'healthy', FailingStreak: 0, Log };
      // In the start period a failure does not count, until the first success.
      if (h.Status === 'starting' && Date.now() - startedAt < startPeriod / 1e6) return { ...h, Log };
      const FailingStreak = h.FailingStreak + 1;
      return { Status: FailingStreak >= retries ? 'unhealthy' : h.Status, FailingStreak, Log };
    });
  };
  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(() => {
      inFlight = round().finally(schedule);
    }, interval / 1e6);
  };
  schedule();
  return async () => {
    stopped = true;
    clearTimeout(timer);
    await inFlight.catch(() => {});
  };
}
