import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

/**
 * Start time of a process in clock ticks since boot (field 22 of /proc/PID/stat), or null when
 * it is gone. A PID plus its start time names one process for good, even after PID reuse.
 */
export function procStartTime(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm may hold spaces and parentheses: fields start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[19]);
  } catch {
    return null;
  }
}

export interface MountInfo {
  id: number;
  parentId: number;
  root: string;
  mountPoint: string;
  options: string;
  fsType: string;
  source: string;
  superOptions: string;
}

const unescapeOctal = (s: string) =>
  s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));

/** The mount table of a process (default: this one), from /proc/PID/mountinfo. */
export function readMountInfo(pid: number | 'self' = 'self'): MountInfo[] {
  return readFileSync(`/proc/${pid}/mountinfo`, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [pre, post] = line.split(' - ');
      const f = pre.split(' ');
      const g = post.split(' ');
      return {
        id: Number(f[0]),
        parentId: Number(f[1]),
        root: unescapeOctal(f[3]),
        mountPoint: unescapeOctal(f[4]),
        options: f[5],
        fsType: g[0],
        source: unescapeOctal(g[1]),
        superOptions: g[2] ?? '',
      };
    });
}

/** True when `path` is the mount point of some mount in this mount namespace. */
export function isMountPoint(path: string): boolean {
  const p = resolve(path);
  return readMountInfo().some((m) => m.mountPoint === p);
}
