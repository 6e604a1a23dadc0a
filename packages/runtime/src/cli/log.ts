// Logging as runc does it (logrus): `--log FILE` gets one line per entry, text
// (`time="…" level=error msg="…"`) or JSON (`{"level":"error","msg":"…","time":"…"}`), which
// containerd's shim and podman read back to report a failure. Without --log entries go to
// stderr; with it, a fatal error is also printed on stderr as a plain line.
import { appendFileSync } from 'node:fs';
import type { Globals } from './args.js';
import { writeErr } from './out.js';

export type Level = 'debug' | 'info' | 'warning' | 'error';

type Settings = Pick<Globals, 'log' | 'logFormat' | 'debug'>;

// One per process: each command's bundle chunk has its own copy of this module, and main's
// configureLog must reach theirs (--debug and --log were lost in every command).
const KEY = Symbol.for('corral.runtime.log');
const shared = globalThis as { [KEY]?: { settings: Settings } };
shared[KEY] ??= { settings: { logFormat: 'text', debug: false } };
const holder = shared[KEY];

export function configureLog(globals: Settings): void {
  holder.settings = globals;
}

function time(): string {
  return new Date().toISOString().replace(/\.\d+Z$/, 'Z');
}

/** A logrus text value: bare when it has no space or quote, else quoted. */
function textValue(s: string): string {
  return /^[A-Za-z0-9_./:@+-]+$/.test(s) ? s : JSON.stringify(s);
}

function format(level: Level, msg: string): string {
  if (holder.settings.logFormat === 'json') return `${JSON.stringify({ level, msg, time: time() })}\n`;
  return `time="${time()}" level=${level} msg=${textValue(msg)}\n`;
}

export function log(level: Level, msg: string): void {
  const { settings } = holder;
  if (level === 'debug' && !settings.debug) return;
  const line = format(level, msg);
  if (settings.log) {
    try {
      appendFileSync(settings.log, line);
      return;
    } catch {
      // an unwritable log: fall back to stderr
    }
  }
  writeErr(line);
}

/** Logs `msg` as an error and exits with `code` (runc's fatal). */
export function fatal(msg: string, code = 1): never {
  log('error', msg);
  if (holder.settings.log) writeErr(`${msg}\n`);
  process.exit(code);
}
