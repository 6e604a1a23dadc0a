import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The cgroup folders, down to 5 levels in each hierarchy under /sys/fs/cgroup, whose names
 * `match` (a match is not walked into). A folder removed while the walk passes it is skipped:
 * tests side by side make and remove cgroups all the time. `hierarchy` picks the hierarchies
 * walked (all by default; v1's cpu and cpuacct links are followed like the others).
 */
export function findCgroupDirs(
  match: (name: string) => boolean,
  hierarchy: (name: string) => boolean = () => true,
): string[] {
  const found: string[] = [];
  const walk = (dir: string, depth: number) => {
    let entries: string[];
    try {
      entries = readdirSync(dir);
    } catch {
      return; // removed meanwhile
    }
    for (const e of entries) {
      const p = join(dir, e);
      let isDir = false;
      try {
        isDir = statSync(p).isDirectory();
      } catch {
        // removed meanwhile
      }
      if (!isDir) continue;
      if (match(e)) found.push(p);
      else if (depth < 4) walk(p, depth + 1);
    }
  };
  for (const h of readdirSync('/sys/fs/cgroup')) if (hierarchy(h)) walk(join('/sys/fs/cgroup', h), 0);
  return found;
}
