import type { Writable } from 'node:stream';
import { shortId } from '../store/digest.js';

/** What happens to one blob during a pull or push. */
export type ProgressStatus =
  | 'waiting'
  | 'exists'
  | 'downloading'
  | 'retrying'
  | 'uploading'
  | 'mounted'
  | 'done'
  | 'failed';

export interface ProgressEvent {
  /** Short id, the first 12 hex digits of the digest, as docker prints it. */
  id: string;
  digest: string;
  kind: 'layer' | 'config' | 'manifest';
  status: ProgressStatus;
  /** Bytes moved so far and the blob's size. */
  current: number;
  total: number;
}

/** The event for a blob at `current` bytes. */
export function progressEvent(
  d: { digest: string; size: number },
  kind: ProgressEvent['kind'],
  status: ProgressStatus,
  current: number,
): ProgressEvent {
  return { id: shortId(d.digest), digest: d.digest, kind, status, current, total: d.size };
}

const LABELS: Record<ProgressStatus, string> = {
  waiting: 'Waiting',
  exists: 'Already exists',
  downloading: 'Downloading',
  retrying: 'Connection lost, retrying',
  uploading: 'Pushing',
  mounted: 'Mounted from another repository',
  done: 'Complete',
  failed: 'Failed',
};

/** `1.5MB`, `310kB`, in docker's decimal units. */
export function formatBytes(n: number): string {
  if (n < 1000) return `${n}B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let v = n;
  let i = -1;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${v >= 100 ? v.toFixed(0) : v.toFixed(1)}${units[i]}`;
}

export interface ProgressRendererOptions {
  /** Draw bars that update in place; defaults to whether the stream is a TTY. */
  tty?: boolean;
  /** Width of a bar in characters. */
  barWidth?: number;
  /** Least time between redraws on a TTY. */
  intervalMs?: number;
}

export interface ProgressRenderer {
  /** Feed one event (pass it as `onProgress`). */
  update(event: ProgressEvent): void;
  /** Draws the final state; call once when the pull or push ends. */
  finish(): void;
}

/**
 * Renders progress events: on a terminal one line per layer with a bar, redrawn in place;
 * elsewhere (logs, pipes) one plain line each time a layer changes status.
 */
export function createProgressRenderer(out: Writable, opts: ProgressRendererOptions = {}): ProgressRenderer {
  const tty = opts.tty ?? (out as { isTTY?: boolean }).isTTY === true;
  const width = opts.barWidth ?? 40;
  const interval = opts.intervalMs ?? 100;
  const rows = new Map<string, ProgressEvent>();
  let drawnLines = 0;
  let lastDraw = 0;
  let timer: NodeJS.Timeout | undefined;

  const line = (e: ProgressEvent): string => {
    const label = LABELS[e.status];
    if ((e.status === 'downloading' || e.status === 'uploading') && e.total > 0) {
      const filled = Math.min(width, Math.floor((e.current / e.total) * width));
      const bar = `[${'='.repeat(Math.max(0, filled - 1))}${filled > 0 ? '>' : ''}${' '.repeat(width - filled)}]`;
      return `${e.id}: ${label} ${bar} ${formatBytes(e.current)}/${formatBytes(e.total)}`;
    }
    return `${e.id}: ${label}`;
  };

  const plainLine = (e: ProgressEvent): string => {
    const moving = e.status === 'downloading' || e.status === 'uploading';
    const size = moving || e.status === 'done' ? ` ${formatBytes(e.total)}` : '';
    return `${e.id}: ${LABELS[e.status]}${size}`;
  };

  const draw = (): void => {
    timer = undefined;
    lastDraw = Date.now();
    let text = drawnLines > 0 ? `\x1b[${drawnLines}A` : '';
    for (const e of rows.values()) text += `\x1b[2K${line(e)}\n`;
    drawnLines = rows.size;
    out.write(text);
  };

  return {
    update(e) {
      if (e.kind === 'manifest') return;
      const before = rows.get(e.id);
      rows.set(e.id, e);
      if (!tty) {
        if (!before || before.status !== e.status) out.write(`${plainLine(e)}\n`);
        return;
      }
      const statusChanged = !before || before.status !== e.status;
      if (statusChanged || Date.now() - lastDraw >= interval) {
        if (timer) clearTimeout(timer);
        draw();
      } else if (!timer) {
        timer = setTimeout(draw, interval);
        timer.unref();
      }
    },
    finish() {
      if (timer) clearTimeout(timer);
      if (tty && rows.size > 0) draw();
    },
  };
}
