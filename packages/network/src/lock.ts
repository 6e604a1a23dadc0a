import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { flock, LOCK, O } from '@corral/sys';

/**
 * Runs `fn` holding an exclusive flock on `path`: one engine process at a time changes
 * networks, bridges and attachments (the kernel drops the lock if the holder is killed).
 * Each call opens the file afresh, so two callers in one process exclude each other too.
 */
export async function withLock<T>(path: string, fn: () => Promise<T>): Promise<T> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const fd = openSync(path, O.CREAT | O.RDWR | O.CLOEXEC, 0o600);
  try {
    while (!flock(fd, LOCK.EX | LOCK.NB)) await sleep(10);
    return await fn();
  } finally {
    closeSync(fd);
  }
}
