import { entryBytes, type LogEntry } from '@corral/engine';

export interface FrameOptions {
  /** Raw bytes (a TTY's one stream), not the 8-byte multiplexed frames. */
  tty: boolean;
  stdout: boolean;
  stderr: boolean;
  /** Each entry's time before its bytes (`docker logs -t`). */
  timestamps?: boolean;
}

/** About the most bytes in one frame: the length field allows 4 GiB, a client's buffer less. */
const FRAME_MAX = 1 << 20;

/**
 * A batch of log entries as one write to an attached client: entries of the same stream in a
 * row share one frame (Docker's clients read a frame's payload as a run of output, so the
 * bytes are the same as one frame per entry), their text is encoded at once, not per entry.
 * With timestamps, one frame per entry (a record to corral --host).
 */
export function framesOf(batch: readonly LogEntry[], o: FrameOptions): Buffer | null {
  const parts: Buffer[] = [];
  let stream: LogEntry['stream'] | null = null;
  let run: Buffer[] = [];
  let text = '';
  let size = 0;
  const endText = () => {
    if (text) run.push(Buffer.from(text));
    text = '';
  };
  const endRun = () => {
    endText();
    if (!run.length) return;
    if (!o.tty) {
      const header = Buffer.alloc(8);
      header[0] = stream === 'stdout' ? 1 : 2;
      header.writeUInt32BE(
        run.reduce((a, b) => a + b.length, 0),
        4,
      );
      parts.push(header);
    }
    parts.push(...run);
    run = [];
    size = 0;
  };
  for (const e of batch) {
    if (e.stream === 'stdout' ? !o.stdout : !o.stderr) continue;
    // With timestamps each entry is a frame of its own: a client (corral --host) reads a
    // frame as one record, `TIME LOG`.
    if (e.stream !== stream || size > FRAME_MAX || o.timestamps) endRun();
    stream = e.stream;
    if (o.timestamps) text += `${e.time} `;
    if (e.raw === undefined) text += e.log;
    else {
      endText();
      run.push(entryBytes(e));
    }
    size += e.log.length;
  }
  endRun();
  return parts.length ? Buffer.concat(parts) : null;
}

/** Until `out` takes more (its 'drain'), or it closes, or the client is gone. */
interface Listened {
  once(event: string, f: () => void): unknown;
  removeListener(event: string, f: () => void): unknown;
}

export function drained(out: Listened, gone: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      out.removeListener('drain', done);
      out.removeListener('close', done);
      gone.removeEventListener('abort', done);
      resolve();
    };
    out.once('drain', done);
    out.once('close', done);
    gone.addEventListener('abort', done, { once: true });
  });
}
