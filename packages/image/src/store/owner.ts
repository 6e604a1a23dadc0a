import * as fs from 'node:fs';
import { procStartTime } from '@corral/sys';

/**
 * Who made a temp file, a session mark or a hold: this process's PID and its start time
 * (`<pid>.<start>`). A PID alone is reused by the kernel, and a leftover owned by a reused PID
 * would look alive for good; a PID with its start time names one process (as the runtime's
 * kill does).
 */
export const SELF_OWNER = `${process.pid}.${procStartTime(process.pid) ?? 0}`;

/**
 * True while the owner named at the start of `name` runs: `<pid>.<start>-...` (this version),
 * or `<pid>-...` (older versions, which wrote the PID alone: judged by the PID).
 */
export function ownerAlive(name: string): boolean {
  const m = /^(\d+)(?:\.(\d+))?(?:-|$)/.exec(name);
  if (!m) return false;
  const pid = Number(m[1]);
  if (pid <= 0) return false;
  if (m[2] !== undefined) return procStartTime(pid) === Number(m[2]);
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The entries of `dir` whose owner is gone (killed loads, commits, saves): their paths. */
export function orphans(dir: string): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  return names.filter((name) => !ownerAlive(name)).map((name) => `${dir}/${name}`);
}

/** Removes the entries of `dir` whose owner is gone (killed loads, commits, saves). */
export function removeOrphans(dir: string): void {
  for (const path of orphans(dir)) fs.rmSync(path, { recursive: true, force: true });
}
