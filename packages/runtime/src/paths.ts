import { lstatSync, readlinkSync } from 'node:fs';
import { posix } from 'node:path';

/**
 * Joins `unsafe` onto `root` the way the kernel would resolve it if `root` were `/`: symlinks
 * are followed inside `root` and `..` never climbs above it. A path from a container's config
 * can therefore never point outside its rootfs. Missing components are kept as they are.
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
