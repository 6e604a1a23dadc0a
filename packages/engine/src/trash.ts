// Removed containers' folders on their way out. Removing a folder file by file takes a while
// (its upper layer, work dir, bundle, logs); renaming it into ROOT/trash takes one rename, after
// which no command sees the container any more. What is in the trash is deleted by whoever
// put it there, or by a process that has no one waiting on it (the keeper of an attached run,
// after its front-end has printed the exit code and gone), and whatever a killed process left
// there is deleted by the next Engine.open. Nothing in the trash is mounted: a container's root
// is unmounted before its folder is removed.
import { mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { procStartTime } from '@corral/sys';

/** The process that deletes a folder put in the trash: its pid and start time. */
export interface TrashOwner {
  pid: number;
  startTime: number;
}

/** The trash of the data root whose containers folder is `containers`. */
export function trashOf(containers: string): string {
  return join(containers, '..', 'trash');
}

/**
 * Moves `dir` into the trash, to be deleted by `owner` (named in the new folder's name, so that
 * the sweep leaves it to that process while it lives); its new path, or null when it could not
 * be moved (then it is where it was).
 */
export function moveToTrash(containers: string, dir: string, name: string, owner: TrashOwner): string | null {
  const trash = trashOf(containers);
  const to = join(trash, `${name}.${owner.pid}.${owner.startTime}`);
  try {
    mkdirSync(trash, { recursive: true, mode: 0o700 });
    renameSync(dir, to);
    return to;
  } catch {
    return null;
  }
}

/** Deletes a folder of the trash (two processes may at once: the second finds less or nothing). */
export function emptyTrashDir(path: string): void {
  try {
    rmSync(path, { recursive: true, force: true, maxRetries: 3, retryDelay: 10 });
  } catch {
    // the next Engine.open takes what is left
  }
}

/** What is in the trash and has no living owner (what killed processes left there): its paths. */
export function abandonedTrash(containers: string): string[] {
  const trash = trashOf(containers);
  let entries: string[];
  try {
    entries = readdirSync(trash);
  } catch {
    return []; // no trash yet
  }
  return entries
    .filter((e) => {
      const [, pid, start] = /\.(\d+)\.(\d+)$/.exec(e) ?? [];
      return !(pid && procStartTime(Number(pid)) === Number(start)); // else its owner deletes it
    })
    .map((e) => join(trash, e));
}

/** Deletes what is in the trash and has no living owner: what killed processes left there. */
export function sweepTrash(containers: string): void {
  for (const path of abandonedTrash(containers)) emptyTrashDir(path);
}
