// A one-line progress display for long work that moves bytes (load of a big archive, commit of
// a big container): on a terminal only, redrawn in place at most ten times a second on stderr;
// in a pipe or a log nothing is printed, so scripts see only the result.
import { createReadStream, fstatSync, statSync } from 'node:fs';
import { type Readable, Transform } from 'node:stream';
import { formatBytes } from '@corral/engine';

export interface ByteProgress {
  /** Bytes done so far (absolute). */
  set(done: number): void;
  /** Clears the line: the result is printed after it. */
  finish(): void;
}

const NONE: ByteProgress = { set() {}, finish() {} };
const WIDTH = 30;

/** `label [=====>    ] 12.3MB/200MB  24.1MB/s`, or without a bar when the total is unknown. */
export function byteProgress(label: string, total?: number, out = process.stderr): ByteProgress {
  if (!out.isTTY) return NONE;
  const started = Date.now();
  let done = 0;
  let drawn = 0;
  let timer: NodeJS.Timeout | undefined;
  const draw = () => {
    timer = undefined;
    drawn = Date.now();
    const secs = (drawn - started) / 1000;
    const rate = secs > 0.5 ? `  ${formatBytes(done / secs)}/s` : '';
    let text: string;
    if (total && total > 0) {
      const filled = Math.min(WIDTH, Math.floor((done / total) * WIDTH));
      const bar = `[${'='.repeat(Math.max(0, filled - 1))}${filled > 0 ? '>' : ''}${' '.repeat(WIDTH - filled)}]`;
      text = `${label} ${bar} ${formatBytes(done)}/${formatBytes(total)}${rate}`;
    } else text = `${label} ${formatBytes(done)}${rate}`;
    out.write(`\r\x1b[2K${text}`);
  };
  return {
    set(n) {
      done = n;
      if (timer) return;
      const wait = 100 - (Date.now() - drawn);
      if (wait <= 0) draw();
      else timer = setTimeout(draw, wait);
    },
    finish() {
      // A frame still waiting is drawn first: the last one shows every byte counted.
      if (timer) {
        clearTimeout(timer);
        draw();
      }
      if (drawn) out.write('\r\x1b[2K');
    },
  };
}

/** `source` as it is read, with the bytes passed through counted into `progress`. */
export function counted(source: Readable, progress: ByteProgress): Readable {
  if (progress === NONE) return source;
  let n = 0;
  const count = new Transform({
    highWaterMark: 1 << 20,
    transform(chunk: Buffer, _enc, done) {
      n += chunk.length;
      progress.set(n);
      done(null, chunk);
    },
  });
  source.on('error', (e) => count.destroy(e));
  return source.pipe(count);
}

/**
 * What `load` reads (`--input FILE` or stdin), counted against its size on a terminal. A path
 * that is not a regular file goes to the engine as it is (its error is the engine's).
 */
export function loadInput(file: string | undefined): { input: string | Readable; progress: ByteProgress } {
  if (!process.stderr.isTTY) return { input: file ?? process.stdin, progress: NONE };
  let total: number | undefined;
  try {
    const st = file === undefined ? fstatSync(0) : statSync(file);
    if (st.isFile()) total = st.size;
    else if (file !== undefined) return { input: file, progress: NONE };
  } catch {
    return { input: file ?? process.stdin, progress: NONE };
  }
  const progress = byteProgress('Loading', total);
  return { input: counted(file === undefined ? process.stdin : createReadStream(file), progress), progress };
}
