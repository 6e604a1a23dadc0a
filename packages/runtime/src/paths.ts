import { lstatSync, readlinkSync } from 'node:fs';
import { posix } from 'node:path';

/**
 * Joins `unsafe` onto `root` the way the kernel would resolve it if `root` were `/`: symlinks
 * are followed inside `root` and `..` never climbs above it. Missing components are kept as
 * they are. The answer is only a name, true when it was computed: a container can swap a
 * component for a symlink before the kernel resolves the string again (CVE-2021-30465). To
 * act on a container's file, open it inside its root instead (@corral/sys `openInRoot`) and
 * use the fd, as the init does (rootfs.ts).
 */
export function secureJoin(root: string, unsafe: string): string {
  const parts = unsafe.split('/').filter((p) => p && p !== '.');
  const resolved: string[] = [];
  let hops = 0;
  while (parts.length) {
    const part = parts.shift()!;
    if (part === '..') {
      resolved.pop();
      continue;
    }
    const candidate = posix.join(root, ...resolved, part);
    let target: string | null = null;
    try {
      if (lstatSync(candidate).isSymbolicLink()) target = readlinkSync(candidate);
    } catch {
      // does not exist (yet): keep the name
    }
    if (target === null) {
      resolved.push(part);
      continue;
    }
    if (++hops > 255) throw new Error(`too many symlinks resolving ${unsafe} in ${root}`);
    if (target.startsWith('/')) resolved.length = 0;
    parts.unshift(...target.split('/').filter((p) => p && p !== '.'));
  }
  return posix.join(root, ...resolved);
}
