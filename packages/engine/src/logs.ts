import { isUtf8 } from 'node:buffer';
import {
  closeSync,
  existsSync,
  type FSWatcher,
  fstatSync,
  openSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  watch,
  writeSync,
} from 'node:fs';
import { finished, type Readable } from 'node:stream';

/**
 * One line of a container's output, as Docker's json-file driver stores it. Output that is not
 * UTF-8 (a binary, a latin-1 file) keeps its exact bytes in `raw` (base64) beside the lossy
 * `log`, so that an attach or `logs` through corrald passes them on unchanged.
 */
export interface LogEntry {
  log: string;
  stream: 'stdout' | 'stderr';
  time: string;
  raw?: string;
}

/** The exact bytes of an entry. */
export function entryBytes(e: LogEntry): Buffer {
  return e.raw !== undefined ? Buffer.from(e.raw, 'base64') : Buffer.from(e.log);
}

/**
 * How much of `buf` ends on a whole UTF-8 character: a partial line written before the rest
 * came keeps a character whose bytes span two chunks for later.
 */
function wholeChars(buf: Buffer): number {
  for (let i = buf.length - 1; i >= Math.max(0, buf.length - 3); i--) {
    const b = buf[i];
    if ((b & 0xc0) === 0x80) continue; // a continuation byte: look further back
    const need = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
    return i + need > buf.length ? i : buf.length;
  }
  return buf.length;
}

/** `--log-opt max-size` / `max-file`: the log is rotated before it would pass maxSize bytes. */
export interface LogRotation {
  maxSize: number;
  /** Files kept in all, the live one included (PATH, PATH.1, ... PATH.N-1; Docker's naming). */
  maxFile: number;
}

/**
 * Writes a container's stdout and stderr to a log file, one JSON object per line, keeping
 * which stream each line came from and when. Partial lines are written when the stream ends.
 * With a rotation, a full file becomes PATH.1 (PATH.1 becomes PATH.2, ...), the oldest
 * beyond max-file goes, and a new PATH is begun; with max-file 1 the file starts afresh.
 */
/** How long an unended line waits for the rest before it is written as it is. */
const PARTIAL_LINE_MS = 30;
/** The longest entry written for a line that has no end yet. */
const MAX_PARTIAL = 64 * 1024;

/** writeSync until all of `buf` is written (a write to a file may be short). */
function writeAll(fd: number, buf: Buffer): number {
  for (let off = 0; off < buf.length; ) off += writeSync(fd, buf, off);
  return buf.length;
}

export class LogWriter {
  private fd: number;
  private size: number;
  private open = 0;
  private done!: () => void;
  readonly finished: Promise<void>;

  constructor(
    private readonly path: string,
    private readonly rotation: LogRotation | null = null,
  ) {
    this.fd = openSync(path, 'a', 0o640);
    this.size = fstatSync(this.fd).size;
    this.finished = new Promise((r) => (this.done = r));
  }

  /** Copies `source` into the log under `stream`; the log closes when every source ended. */
  attach(source: Readable, stream: LogEntry['stream']): void {
    this.open++;
    // Bytes, split at newlines: a character whose bytes span two chunks stays whole.
    let pending: Buffer = Buffer.alloc(0);
    // A line the program has not ended yet (a shell's prompt, a question) is written as a
    // partial entry once the program has been quiet a moment: attached clients, which follow
    // the log, see it as a terminal would. Lines come whole as before.
    let partial: NodeJS.Timeout | null = null;
    const flushPartial = () => {
      partial = null;
      const cut = wholeChars(pending);
      if (cut > 0) this.writeLines([pending.subarray(0, cut)], stream);
      pending = pending.subarray(cut);
    };
    source.on('data', (chunk: Buffer) => {
      pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
      // Every whole line of the chunk in one write (one JSON object each).
      const lines: Buffer[] = [];
      let start = 0;
      for (let nl = pending.indexOf(0x0a); nl >= 0; nl = pending.indexOf(0x0a, start)) {
        lines.push(pending.subarray(start, nl + 1));
        start = nl + 1;
      }
      pending = pending.subarray(start);
      // A line without end that grows past MAX_PARTIAL goes as partial entries of that size
      // (Docker cuts at 16 KiB): never a copy of all of it per chunk, nor one entry of 50 MB.
      while (pending.length >= MAX_PARTIAL) {
        const cut = wholeChars(pending.subarray(0, MAX_PARTIAL));
        lines.push(pending.subarray(0, cut));
        pending = pending.subarray(cut);
      }
      if (lines.length) this.writeLines(lines, stream);
      if (pending.length && !partial) partial = setTimeout(flushPartial, PARTIAL_LINE_MS);
      else if (!pending.length && partial) {
        clearTimeout(partial);
        partial = null;
      }
    });
    // finished() also fires for a stream that already ended before we attached (a program
    // that exits at once): a 'close' listener added then would wait forever.
    finished(source, () => {
      if (partial) clearTimeout(partial);
      partial = null;
      if (pending.length) this.writeLines([pending], stream);
      if (--this.open === 0) {
        closeSync(this.fd);
        this.done();
      }
    });
  }

  /**
   * Lines of one chunk as entries, in one write: they share the chunk's time, and the UTF-8
   * check is made once for them all when they are (a newline never falls inside a character).
   */
  private writeLines(lines: Buffer[], stream: LogEntry['stream']): void {
    const meta = `,"stream":"${stream}","time":"${new Date().toISOString()}"`;
    const first = lines[0];
    const last = lines[lines.length - 1];
    const allUtf8 =
      first.buffer === last.buffer &&
      isUtf8(
        new Uint8Array(first.buffer, first.byteOffset, last.byteOffset + last.length - first.byteOffset),
      );
    let text = '';
    let gathered = 0; // bytes of `text`
    for (const bytes of lines) {
      let line = `{"log":${JSON.stringify(bytes.toString('utf8'))}${meta}`;
      line += !allUtf8 && !isUtf8(bytes) ? `,"raw":"${bytes.toString('base64')}"}\n` : '}\n';
      if (this.rotation) {
        // Rotation counts bytes line by line, what is gathered and not yet written too: that
        // goes first, then the new file.
        const n = Buffer.byteLength(line);
        const size = this.size + gathered;
        if (size > 0 && size + n > this.rotation.maxSize) {
          if (text) this.size += writeAll(this.fd, Buffer.from(text));
          text = '';
          gathered = 0;
          this.rotate();
        }
        gathered += n;
      }
      text += line;
    }
    this.size += writeAll(this.fd, Buffer.from(text));
  }

  private rotate(): void {
    const keep = Math.max(1, this.rotation!.maxFile);
    closeSync(this.fd);
    rmSync(`${this.path}.${keep - 1}`, { force: true });
    for (let i = keep - 2; i >= 1; i--)
      if (existsSync(`${this.path}.${i}`)) renameSync(`${this.path}.${i}`, `${this.path}.${i + 1}`);
    if (keep > 1) renameSync(this.path, `${this.path}.1`);
    else rmSync(this.path, { force: true });
    // A new file (a follower still holding the old one sees its inode change and moves on).
    this.fd = openSync(this.path, 'a', 0o640);
    this.size = 0;
  }
}

/** The rotated files of a log that exist, oldest first (PATH.N ... PATH.1). */
export function rotatedLogs(path: string): string[] {
  const out: string[] = [];
  for (let i = 1; existsSync(`${path}.${i}`); i++) out.unshift(`${path}.${i}`);
  return out;
}

export interface ReadLogsOptions {
  /** Keep reading as the container writes, until `isDone()` says it has ended. */
  follow?: boolean;
  isDone?: () => boolean;
  /** How a follower waits for more (default: 50 ms); the engine's wakes early on its own events. */
  pause?: (ms: number) => Promise<void>;
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
  for await (const batch of readLogBatches(path, options)) yield* batch;
}

/**
 * The same entries in batches, as each read of the file finds them: a front-end that streams
 * them (corrald's attach and logs) writes one batch at a time, not one entry at a time.
 */
export async function* readLogBatches(
  path: string,
  options: ReadLogsOptions = {},
): AsyncGenerator<LogEntry[]> {
  if (!existsSync(path)) return;
  const older = rotatedLogs(path);
  // One fd for the whole read: an --rm container's folder may be removed right after its last
  // line is written, and a follower still reads that line through the open file.
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return;
  }
  try {
    yield* readOpen(fd, options, older, path);
  } finally {
    closeSync(fd);
  }
}

/**
 * The entries in `bytes`, whole lines of a log: parsed as one JSON array (one parse, not one
 * per line: a JSON string never holds a raw newline, so each newline is between two entries),
 * or line by line when that fails (a line cut short by a crash).
 */
function parseLines(bytes: Buffer, options: ReadLogsOptions): LogEntry[] {
  const text = bytes.toString('utf8');
  let entries: LogEntry[];
  try {
    entries = JSON.parse(`[${text.replaceAll('\n', ',')}]`) as LogEntry[];
  } catch {
    entries = text
      .split('\n')
      .map(parse)
      .filter((e): e is LogEntry => e !== null);
  }
  return options.since === undefined && options.until === undefined
    ? entries
    : entries.filter((e) => inWindow(e, options));
}

/** Every entry of a rotated (finished) log file. */
function readWhole(file: string, options: ReadLogsOptions): LogEntry[] {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return []; // rotated away meanwhile
  }
  try {
    const buf = Buffer.allocUnsafe(fstatSync(fd).size);
    const n = readSync(fd, buf, 0, buf.length, 0);
    const end = buf.subarray(0, n).lastIndexOf(0x0a);
    return end < 0 ? [] : parseLines(buf.subarray(0, end), options);
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

/** The most read from a log at once: a follower far behind catches up in steps of this. */
const READ_MAX = 4 << 20;

async function* readOpen(
  firstFd: number,
  options: ReadLogsOptions,
  older: readonly string[] = [],
  path?: string,
): AsyncGenerator<LogEntry[]> {
  let fd = firstFd;
  let offset = 0;
  // Decoded only up to the last newline: a line being written may end inside a character.
  let rest = Buffer.alloc(0);
  let more = false; // the file had more than one read took
  const readMore = (): LogEntry[] => {
    const size = fstatSync(fd).size;
    more = false;
    if (size <= offset) return [];
    const want = Math.min(size - offset, READ_MAX);
    more = size - offset > want;
    // The unended line before, then what was added since, in one buffer.
    const buf = Buffer.allocUnsafe(rest.length + want);
    rest.copy(buf);
    const n = readSync(fd, buf, rest.length, want, offset);
    offset += n;
    const bytes = buf.subarray(0, rest.length + n);
    const end = bytes.lastIndexOf(0x0a);
    if (end < 0) {
      rest = Buffer.from(bytes);
      return [];
    }
    rest = Buffer.from(bytes.subarray(end + 1));
    return end === 0 ? [] : parseLines(bytes.subarray(0, end), options);
  };
  let first = older.flatMap((f) => readWhole(f, options));
  do first = first.concat(readMore());
  while (more);
  if (options.tail !== undefined && options.tail >= 0)
    first = options.tail === 0 ? [] : first.slice(-options.tail);
  if (first.length) yield first;
  if (!options.follow) return;
  // A follower wakes as soon as the file grows (inotify on the path), not only every 50 ms:
  // an attached terminal, which follows the log, echoes what is typed at once.
  const changes = path ? watchChanges(path) : null;
  try {
    for (;;) {
      const done = options.isDone?.() ?? true;
      changes?.clear();
      do {
        const batch = readMore();
        if (batch.length) yield batch;
      } while (more);
      // Rotated: what the old file still had is read above; go on with the new one.
      const next = path ? reopened(path, fd) : null;
      if (next !== null) {
        do {
          const batch = readMore();
          if (batch.length) yield batch;
        } while (more);
        if (fd !== firstFd) closeSync(fd);
        fd = next;
        offset = 0;
        rest = Buffer.alloc(0);
        continue;
      }
      if (done) return;
      const pause = options.pause?.(50) ?? new Promise((r) => setTimeout(r, 50));
      await (changes ? Promise.race([pause, changes.next()]) : pause);
    }
  } finally {
    changes?.close();
    if (fd !== firstFd) closeSync(fd);
  }
}

/** Changes of a file as a wake-up: `next` resolves at the next one (at once if one came since `clear`). */
function watchChanges(path: string): { next(): Promise<void>; clear(): void; close(): void } | null {
  let changed = false;
  let wake: (() => void) | null = null;
  let watcher: FSWatcher;
  try {
    watcher = watch(path, { persistent: false }, () => {
      changed = true;
      wake?.();
    });
  } catch {
    return null; // gone already, or no inotify: the 50 ms polls alone
  }
  watcher.on('error', () => {});
  return {
    next: () =>
      changed
        ? Promise.resolve()
        : new Promise<void>((r) => {
            wake = () => {
              wake = null;
              r();
            };
          }),
    clear: () => {
      changed = false;
    },
    close: () => watcher.close(),
  };
}

/**
 * After a rotation, the fd of the file that follows the one `fd` reads: PATH.k-1 when ours is
 * now PATH.k, PATH when ours is PATH.1, and when ours was removed (rotated past max-file) the
 * oldest one left. Null while `fd` still reads PATH itself.
 */
function reopened(path: string, fd: number): number | null {
  const ino = (p: string) => {
    try {
      return statSync(p).ino;
    } catch {
      return null;
    }
  };
  const mine = fstatSync(fd).ino;
  const current = ino(path);
  if (current === null || current === mine) return null;
  const rotated = rotatedLogs(path); // oldest first: PATH.N ... PATH.1
  const at = rotated.findIndex((f) => ino(f) === mine);
  const next = at < 0 ? (rotated[0] ?? path) : (rotated[at + 1] ?? path);
  try {
    return openSync(next, 'r');
  } catch {
    return null; // rotated again meanwhile: the next round finds it
  }
}
