import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { flock, LOCK } from '@corral/sys';
import { ImageError } from '../errors.js';

/** fsync a folder so a rename in it survives a crash. */
export function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** fsync a folder without blocking the event loop. */
export async function fsyncDirAsync(dir: string): Promise<void> {
  const handle = await fs.promises.open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * A unique temp name in `tmpDir` that starts with our pid, so a later process can tell
 * leftovers of a dead loader (removable) from work in progress (kept).
 */
export function tempName(tmpDir: string, kind: string): string {
  return join(tmpDir, `${process.pid}-${kind}-${randomBytes(6).toString('hex')}`);
}

/** Writes `data` to `path` through a temp file in `tmpDir`: write, fsync, rename, fsync dir. */
export function writeFileAtomic(path: string, data: string | Uint8Array, tmpDir: string): void {
  const tmp = tempName(tmpDir, 'file');
  const fd = fs.openSync(tmp, 'wx', 0o600);
  try {
    fs.writeFileSync(fd, data);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  try {
    fs.renameSync(tmp, path);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fsyncDir(join(path, '..'));
}

export function readJsonFile<T>(path: string): T | undefined {
  let text: string;
  try {
    text = fs.readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  try {
    const value = JSON.parse(text) as unknown;
    if (!value || typeof value !== 'object' || Array.isArray(value)) throw new Error('not a JSON object');
    return value as T;
  } catch (e) {
    throw damagedState(path, (e as Error).message.replace(/\s+/g, ' '));
  }
}

/** What to say about a state file that does not parse (a disk fault, a hand edit). */
export function damagedState(path: string, why: string): ImageError {
  return new ImageError(
    'DAMAGED_STATE',
    `the state file ${path} is damaged (${why}): run \`corral system check --repair\` to set it aside and repair the store`,
  );
}

export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Takes an exclusive flock(2) on a lock file, polling so the event loop keeps running.
 * The kernel drops the lock when its holder dies, so a killed load leaves no stale lock.
 * Returns a release function.
 *
 * flock(2) works on any fd, a read-only one too: a lock file is safe only where no other
 * user can open it. Lock files are 0600 and live in a 0700 folder (see state-dir.ts).
 */
export async function acquireLock(path: string): Promise<() => void> {
  const { O_RDWR, O_CREAT, O_NOFOLLOW } = fs.constants;
  const fd = fs.openSync(path, O_RDWR | O_CREAT | O_NOFOLLOW, 0o600);
  try {
    for (let wait = 2; !flock(fd, LOCK.EX | LOCK.NB); wait = Math.min(wait * 2, 50)) await sleep(wait);
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
  // Closing the file drops the lock.
  return () => fs.closeSync(fd);
}

/** Removes temp entries left by processes that are gone (killed loads). */
export function cleanTempDir(tmpDir: string): void {
  let names: string[];
  try {
    names = fs.readdirSync(tmpDir);
  } catch {
    return;
  }
  for (const name of names) {
    const pid = Number.parseInt(name, 10);
    if (!pidAlive(pid)) fs.rmSync(join(tmpDir, name), { recursive: true, force: true });
  }
}
