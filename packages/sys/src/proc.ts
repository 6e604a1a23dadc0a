import { readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';

/**
 * Start time of a process in clock ticks since boot (field 22 of /proc/PID/stat), or null when
 * it is gone. A PID plus its start time names one process for good, even after PID reuse.
 */
export function procStartTime(pid: number): number | null {
  const path = `/proc/${pid}/stat`;
  // A gone process is found without an exception (their making is most of a failed read's cost,
  // and `corral ps` asks after every exited container's keeper).
  if (!statSync(path, { throwIfNoEntry: false })) return null;
  try {
    const stat = readFileSync(path, 'utf8');
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

/**
 * The mount points of a process's mount table (default: this one), each once: what
 * readMountInfo gives, with only the one field parsed (a check before `corral ps` asks it).
 */
export function mountPoints(pid: number | 'self' = 'self'): Set<string> {
  const points = new Set<string>();
  for (const line of readFileSync(`/proc/${pid}/mountinfo`, 'utf8').split('\n')) {
    // Fields: id, parent id, major:minor, root, mount point, ...
    let at = 0;
    for (let i = 0; i < 4 && at !== -1; i++) at = line.indexOf(' ', at + 1);
    if (at === -1) continue;
    const end = line.indexOf(' ', at + 1);
    const point = line.slice(at + 1, end === -1 ? undefined : end);
    points.add(point.includes('\\') ? unescapeOctal(point) : point);
  }
  return points;
}

/** True when `path` is the mount point of some mount in this mount namespace. */
export function isMountPoint(path: string): boolean {
  return mountPoints().has(resolve(path));
}
