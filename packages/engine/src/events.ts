import { EventEmitter } from 'node:events';
import {
  closeSync,
  existsSync,
  fstatSync,
  openSync,
  readSync,
  renameSync,
  statSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { EngineError } from './errors.js';

/** One event of Docker's stream (`docker events --format json`, GET /events). */
export interface EngineEvent {
  Type: 'container' | 'image' | 'volume';
  /** create, start, die, destroy, pause, unpause, kill, oom, rename; pull, push, load, import, tag, untag, delete, save. */
  Action: string;
  Actor: { ID: string; Attributes: Record<string, string> };
  scope: 'local';
  /** Seconds since the epoch, and the same in nanoseconds. */
  time: number;
  timeNano: number;
  /** The fields older Docker clients read. */
  status?: string;
  id?: string;
  from?: string;
}

export interface EventFilter {
  /** Docker's filters: container (id or name), image, event (the action), type. */
  [key: string]: string[];
}

export interface ReadEventsOptions {
  /** Past events from this time on (ms since the epoch); without it only new ones. */
  since?: number;
  /** Stop at this time (ms since the epoch); without it the stream goes on until `signal` aborts. */
  until?: number;
  filters?: EventFilter;
  signal?: AbortSignal;
}

/** Rotated past this size: the log is a recent history, as Docker keeps one in memory. */
const MAX_BYTES = 4 << 20;

/**
 * The engine's event log: ROOT/events.jsonl, one JSON object a line, appended with O_APPEND
 * by whichever process acts (the CLI, a watcher), so every front-end reads one stream.
 */
export class EventLog {
  readonly path: string;
  /** Fired on each event this process writes: its own readers wake at once (corrald's wait). */
  readonly #written = new EventEmitter().setMaxListeners(0);

  constructor(root: string) {
    this.path = join(root, 'events.jsonl');
  }

  emit(type: EngineEvent['Type'], action: string, id: string, attributes: Record<string, string> = {}): void {
    const nowMs = Date.now();
    const event: EngineEvent = {
      Type: type,
      Action: action,
      Actor: { ID: id, Attributes: attributes },
      scope: 'local',
      time: Math.floor(nowMs / 1000),
      timeNano: nowMs * 1_000_000,
      ...(type === 'container'
        ? { status: action, id, ...(attributes.image ? { from: attributes.image } : {}) }
        : {}),
    };
    try {
      if (existsSync(this.path) && statSync(this.path).size > MAX_BYTES)
        renameSync(this.path, `${this.path}.1`);
      const fd = openSync(this.path, 'a', 0o600);
      try {
        writeSync(fd, `${JSON.stringify(event)}\n`);
      } finally {
        closeSync(fd);
      }
    } catch {
      // an event that cannot be written must not fail what it reports
    }
    this.#written.emit('event');
  }

  /**
   * Resolves after `ms`, or sooner when this process writes an event. Other processes' events
   * (a keeper's) are seen at the next poll.
   */
  next(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#written.off('event', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#written.once('event', done);
    });
  }

  /** Events in time order: the past ones asked for with `since`, then new ones as they come. */
  async *read(options: ReadEventsOptions = {}): AsyncGenerator<EngineEvent> {
    const match = matcher(options.filters ?? {});
    const since = options.since ?? Date.now();
    let offset = startOffset(this.path, since);
    let rest = Buffer.alloc(0);
    const more = (): EngineEvent[] => {
      if (!existsSync(this.path)) return [];
      const size = statSync(this.path).size;
      if (size < offset) {
        offset = 0; // rotated
        rest = Buffer.alloc(0);
      }
      if (size <= offset) return [];
      const fd = openSync(this.path, 'r');
      const buf = Buffer.alloc(size - offset);
      const n = readSync(fd, buf, 0, buf.length, offset);
      closeSync(fd);
      offset += n;
      // Decoded up to the last newline only: a line being written may end inside a character.
      const bytes = Buffer.concat([rest, buf.subarray(0, n)]);
      const end = bytes.lastIndexOf(0x0a);
      rest = end < 0 ? bytes : bytes.subarray(end + 1);
      const lines = end < 0 ? [] : bytes.subarray(0, end).toString('utf8').split('\n');
      const out: EngineEvent[] = [];
      for (const l of lines) {
        try {
          out.push(JSON.parse(l) as EngineEvent);
        } catch {
          // a damaged line
        }
      }
      return out;
    };
    for (;;) {
      for (const e of more()) {
        // In nanoseconds, as stored: timeNano is past 2^53, and dividing it back to ms may
        // round an event at exactly `since` below it.
        if (options.until !== undefined && e.timeNano > options.until * 1e6) return;
        if (e.timeNano >= since * 1e6 && match(e)) yield e;
      }
      if (options.until !== undefined && Date.now() > options.until) return;
      if (options.signal?.aborted) return;
      await this.next(100);
    }
  }
}

/** What is read back from the log's end to find where recent events begin. */
const TAIL_BYTES = 64 * 1024;
/** How long a process may take between an event's time and its write (emit: a few syscalls). */
const WRITE_SKEW_MS = 5000;

/**
 * Where a read for events at or after `since` starts: the first whole line of the log's last
 * TAIL_BYTES when that event is older than `since` by WRITE_SKEW_MS (every line before it was
 * written before it, so is older than `since` too), else 0. A reader from now (corrald's wait
 * on every `docker run`) then parses a few KB, not the whole log (up to MAX_BYTES: ~12,000
 * events, tens of ms).
 */
function startOffset(path: string, since: number): number {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return 0;
  }
  try {
    const size = fstatSync(fd).size;
    if (size <= TAIL_BYTES) return 0;
    const from = size - TAIL_BYTES;
    const buf = Buffer.alloc(TAIL_BYTES);
    const n = readSync(fd, buf, 0, TAIL_BYTES, from);
    const start = buf.subarray(0, n).indexOf(0x0a) + 1;
    const end = start > 0 ? buf.subarray(0, n).indexOf(0x0a, start) : -1;
    if (end < 0) return 0;
    const first = JSON.parse(buf.subarray(start, end).toString('utf8')) as EngineEvent;
    return first.timeNano / 1e6 < since - WRITE_SKEW_MS ? from + start : 0;
  } catch {
    return 0; // a damaged line: read it all
  } finally {
    closeSync(fd);
  }
}

function matcher(filters: EventFilter): (e: EngineEvent) => boolean {
  const allow = (key: string, ...values: (string | undefined)[]) => {
    const want = filters[key];
    if (!want?.length) return true;
    return values.some(
      (v) => v !== undefined && want.some((w) => v === w || (key !== 'event' && v.startsWith(w))),
    );
  };
  return (e) =>
    allow('type', e.Type) &&
    allow('event', e.Action) &&
    (filters.container?.length
      ? e.Type === 'container' && allow('container', e.Actor.ID, e.Actor.Attributes.name)
      : true) &&
    allow(
      'image',
      e.Actor.Attributes.image,
      e.Type === 'image' ? e.Actor.ID : undefined,
      e.Actor.Attributes.name,
    );
}

/**
 * A point in time as Docker takes one for --since and --until: seconds since the epoch
 * (`1700000000.5`), a date (RFC 3339), or a duration before now (`10m`, `1h30m`, `500ms`).
 * Returns ms since the epoch.
 */
export function parseTime(value: string, now = Date.now()): number {
  if (/^\d+(\.\d+)?$/.test(value)) return Number(value) * 1000;
  const units: Record<string, number> = { ns: 1e-6, us: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  if (/^(\d+(\.\d+)?(ns|us|ms|s|m|h))+$/.test(value)) {
    let ms = 0;
    for (const [, n, , u] of value.matchAll(/(\d+(\.\d+)?)(ns|us|ms|s|m|h)/g)) ms += Number(n) * units[u];
    return now - ms;
  }
  const t = Date.parse(value);
  if (Number.isNaN(t))
    throw new EngineError(
      'InvalidArgument',
      `invalid time ${value}: a timestamp, a date or a duration (10m)`,
    );
  return t;
}

/** `key=value` filters (`--filter container=web`) grouped by key. */
export function parseFilters(list: readonly string[]): EventFilter {
  const out: EventFilter = {};
  for (const f of list) {
    const eq = f.indexOf('=');
    if (eq <= 0) throw new EngineError('InvalidArgument', `bad format of filter (expected name=value): ${f}`);
    const key = f.slice(0, eq);
    if (!['container', 'image', 'event', 'type'].includes(key))
      throw new EngineError('InvalidArgument', `invalid filter '${key}': container, image, event or type`);
    out[key] = [...(out[key] ?? []), f.slice(eq + 1)];
  }
  return out;
}
