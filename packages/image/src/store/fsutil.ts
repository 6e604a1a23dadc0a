import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { flock, LOCK } from '@corral/sys';
import { ImageError } from '../errors.js';
import { removeOrphans, SELF_OWNER } from './owner.js';

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
 * A unique temp name in `tmpDir` that starts with our pid and start time (see owner.ts), so a
 * later process can tell leftovers of a dead loader (removable) from work in progress (kept),
 * also once the kernel has given the dead loader's PID to another process.
 */
export function tempName(tmpDir: string, kind: string): string {
  return join(tmpDir, `${SELF_OWNER}-${kind}-${randomBytes(6).toString('hex')}`);
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

/** What to say about a state file that does not parse (a disk fault, a hand edit); `repair` is set. */
export function damagedState(path: string, why: string): ImageError {
  return new ImageError('DAMAGED_STATE', `the state file ${path} is damaged (${why})`);
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

/** Drops a lock; with `unlink`, its file goes too (for locks named after things that come and go). */
export type Release = (options?: { unlink?: boolean }) => void;

/** True while `path` still names the file open as `fd` (a lock file not unlinked meanwhile). */
function sameFile(fd: number, path: string): boolean {
  const held = fs.fstatSync(fd);
  const now = fs.statSync(path, { throwIfNoEntry: false });
  return now !== undefined && now.ino === held.ino && now.dev === held.dev;
}

/**
 * Takes an exclusive flock(2) on a lock file, polling so the event loop keeps running.
 * The kernel drops the lock when its holder dies, so a killed load leaves no stale lock.
 * Returns a release function.
 *
 * A holder may unlink the file as it releases (per-layer locks do): a waiter that then gets
 * the lock of the unlinked file sees that the name now points elsewhere (or nowhere) and
 * takes the lock again on the current file, so two processes never both hold one name.
 *
 * flock(2) works on any fd, a read-only one too: a lock file is safe only where no other
 * user can open it. Lock files are 0600 and live in a 0700 folder (see state-dir.ts).
 */
export async function acquireLock(path: string): Promise<Release> {
  const { O_RDWR, O_CREAT, O_NOFOLLOW } = fs.constants;
  for (;;) {
    const fd = fs.openSync(path, O_RDWR | O_CREAT | O_NOFOLLOW, 0o600);
    try {
      for (let wait = 2; !flock(fd, LOCK.EX | LOCK.NB); wait = Math.min(wait * 2, 50)) await sleep(wait);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
    if (sameFile(fd, path)) {
      // Unlinked while still held; closing the file drops the lock.
      return (options) => {
        if (options?.unlink) fs.rmSync(path, { force: true });
        fs.closeSync(fd);
      };
    }
    fs.closeSync(fd);
  }
}

/**
 * Removes the lock files in `dir` whose names start with `prefix` and that nobody holds
 * (left by a holder killed before it could unlink its file): each is taken first, so one a
 * process holds or waits for is never pulled from under it.
 */
export function removeIdleLocks(dir: string, prefix: string): void {
  let names: string[];
  try {
    names = fs.readdirSync(dir).filter((n) => n.startsWith(prefix));
  } catch {
    return;
  }
  for (const name of names) {
    const path = join(dir, name);
    let fd: number;
    try {
      fd = fs.openSync(path, fs.constants.O_RDWR | fs.constants.O_NOFOLLOW);
    } catch {
      continue; // gone meanwhile
    }
    try {
      if (flock(fd, LOCK.EX | LOCK.NB) && sameFile(fd, path)) fs.rmSync(path, { force: true });
    } finally {
      fs.closeSync(fd);
    }
  }
}

/**
 * Removes temp entries left by processes that are gone (killed loads), judged by PID and
 * start time, so a PID the kernel has reused keeps no leftover alive (see owner.ts).
 */
export function cleanTempDir(tmpDir: string): void {
  removeOrphans(tmpDir);
}
