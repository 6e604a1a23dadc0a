// A keeper's memory after its program's output (keeper.ts, and keeper-restart.ts for the
// program it restarts): the log writer copies the output in chunks that malloc serves, and
// after a burst the freed chunks stay in malloc's arenas. Measured with 10 containers that
// printed 200,000 lines each (a keeper at rest: 7.5 MiB private): without this the keepers
// held 16-22 MiB each for 10 s, then settled at 10 (median); with it, 15 and then 8
// (bench/daemon/keeper-memory.mjs --busy, bench/results/keeper.md).
import type { Readable } from 'node:stream';
import { mallocTrim } from '@corral/sys';

/** How long the program's output is quiet before the keeper gives back what it freed. */
const TRIM_QUIET_MS = 1000;
/**
 * And again this long after: V8's memory reducer runs its own collections about 8 s after a
 * process went idle, and frees more then (measured: the keepers' memory fell by another
 * 1-2 MiB each about 10 s after their output ended), which malloc keeps unless trimmed.
 */
const TRIM_AGAIN_MS = 15_000;
/**
 * Output below this since the last trim leaves nothing worth a full collection: a container
 * that writes a line now and then never pays one per line.
 */
const TRIM_MIN_BYTES = 1 << 20;

/**
 * V8's full collection (the keeper runs with --expose-gc, keeper-spawn.ts). The chunks are the
 * memory of Buffers: they go back to malloc only when V8 collects those, and an idle keeper
 * collects nothing by itself until the memory reducer does.
 */
const collect = (globalThis as { gc?: () => void }).gc;

/**
 * Once the program's output on `sources` has been quiet a moment, collects the Buffers that
 * held it and gives the memory they took back to the system (sys/memory.ts), and once more
 * after V8's own collections. A quiet container costs nothing: no timer runs between bursts,
 * none before a MiB of output, and none keeps the keeper alive.
 */
export function trimAfterOutput(sources: Readable[]): void {
  let quiet: NodeJS.Timeout | null = null;
  let again = false;
  let bytes = 0;
  const trim = () => {
    if (!again) {
      bytes = 0;
      collect?.();
    }
    try {
      mallocTrim();
    } catch {
      // a libc without malloc_trim: the memory stays, as before
    }
    quiet = again ? null : setTimeout(trim, TRIM_AGAIN_MS).unref();
    again = !again;
  };
  const onData = (chunk: Buffer) => {
    bytes += chunk.length;
    if (bytes < TRIM_MIN_BYTES) return;
    if (quiet && !again) {
      quiet.refresh();
      return;
    }
    if (quiet) clearTimeout(quiet);
    again = false;
    quiet = setTimeout(trim, TRIM_QUIET_MS).unref();
  };
  for (const s of sources) s.on('data', onData);
}
