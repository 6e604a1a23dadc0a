import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  writeSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { NetworkError } from './errors.js';

/** Writes JSON whole or not at all: a temp file, fsync, rename. */
export function writeJson(path: string, value: unknown): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, `${JSON.stringify(value, null, 2)}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

export function readJson<T>(path: string): T | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  try {
    const value = JSON.parse(text) as unknown;
    if (!value || typeof value !== 'object' || Array.isArray(value)) throw new Error('not a JSON object');
    return value as T;
  } catch (e) {
    // A disk fault or a hand edit: name the file (never a bare SyntaxError); the repair is data.
    throw new NetworkError('Unavailable', `the state file ${path} is damaged (${(e as Error).message})`, {
      repair: 'system-check',
    });
  }
}

/** The names in a folder (none when it does not exist), temp files left out. */
export function entries(dir: string): string[] {
  try {
    return readdirSync(dir).filter((n) => !n.endsWith('.tmp'));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
}

export const jsonName = (n: string) => `${n}.json`;
export const stripJson = (n: string) => (n.endsWith('.json') ? n.slice(0, -5) : undefined);
export { join };
