import { closeSync, existsSync, fstatSync, openSync, readSync, writeSync } from 'node:fs';
import { finished, type Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';

/** One line of a container's output, as Docker's json-file driver stores it. */
export interface LogEntry {
  log: string;
  stream: 'stdout' | 'stderr';
  time: string;
}

/**
 * Writes a container's stdout and stderr to a log file, one JSON object per line, keeping
 * which stream each line came from and when. Partial lines are written when the stream ends.
 */
export class LogWriter {
  private readonly fd: number;
  private open = 0;
  private done!: () => void;
  readonly finished: Promise<void>;

  constructor(path: string) {
    this.fd = openSync(path, 'a', 0o640);
    this.finished = new Promise((r) => (this.done = r));
  }

  /** Copies `source` into the log under `stream`; the log closes when every source ended. */
  attach(source: Readable, stream: LogEntry['stream']): void {
    this.open++;
    let pending = '';
    // One decoder per stream: a character whose bytes span two chunks is joined, not split
    // into two replacement characters.
    const decoder = new StringDecoder('utf8');
    source.on('data', (chunk: Buffer) => {
      pending += decoder.write(chunk);
      let nl = pending.indexOf('\n');
      while (nl >= 0) {
        this.write(pending.slice(0, nl + 1), stream);
        pending = pending.slice(nl + 1);
        nl = pending.indexOf('\n');
      }
    });
    // finished() also fires for a stream that already ended before we attached (a program
    // that exits at once): a 'close' listener added then would wait forever.
    finished(source, () => {
      pending += decoder.end();
      if (pending) this.write(pending, stream);
      if (--this.open === 0) {
        closeSync(this.fd);
        this.done();
      }
    });
  }

  private write(log: string, stream: LogEntry['stream']): void {
    writeSync(this.fd, `${JSON.stringify({ log, stream, time: new Date().toISOString() })}\n`);
  }
}

export interface ReadLogsOptions {
  /** Keep reading as the container writes, until `isDone()` says it has ended. */
  follow?: boolean;
  isDone?: () => boolean;
  /** Only the last N lines (of what is there when reading starts). */
  tail?: number;
  /** Only entries written at or after this time, and not after `until` (ms since the epoch). */
  since?: number;
  until?: number;
}

function parse(line: string): LogEntry | null {
  try {
    return JSON.parse(line) as LogEntry;
  } catch {
    return null; // a line being written right now
  }
}

/** The entries of a log file, optionally following it while the container runs. */
export async function* readLogs(path: string, options: ReadLogsOptions = {}): AsyncGenerator<LogEntry> {
  if (!existsSync(path)) return;
  // One fd for the whole read: an --rm container's folder may be removed right after its last
  // line is written, and a follower still reads that line through the open file.
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return;
  }
  try {
    yield* readOpen(fd, options);
  } finally {
    closeSync(fd);
  }
}

function inWindow(e: LogEntry, options: ReadLogsOptions): boolean {
  if (options.since === undefined && options.until === undefined) return true;
  const t = Date.parse(e.time);
  return (
    !(options.since !== undefined && t < options.since) && !(options.until !== undefined && t > options.until)
  );
}

async function* readOpen(fd: number, options: ReadLogsOptions): AsyncGenerator<LogEntry> {
  let offset = 0;
  // Decoded only up to the last newline: a line being written may end inside a character.
  let rest = Buffer.alloc(0);
  const readMore = (): LogEntry[] => {
    const size = fstatSync(fd).size;
    if (size <= offset) return [];
    const buf = Buffer.alloc(size - offset);
    const n = readSync(fd, buf, 0, buf.length, offset);
    offset += n;
    const bytes = Buffer.concat([rest, buf.subarray(0, n)]);
    const end = bytes.lastIndexOf(0x0a);
    if (end < 0) {
      rest = bytes;
      return [];
    }
    rest = bytes.subarray(end + 1);
    const lines = bytes.subarray(0, end).toString('utf8').split('\n');
    return lines.map(parse).filter((e): e is LogEntry => e !== null && inWindow(e, options));
  };
  let first = readMore();
  if (options.tail !== undefined && options.tail >= 0)
    first = options.tail === 0 ? [] : first.slice(-options.tail);
  yield* first;
  if (!options.follow) return;
  for (;;) {
    const done = options.isDone?.() ?? true;
    yield* readMore();
    if (done) return;
    await new Promise((r) => setTimeout(r, 50));
  }
}
