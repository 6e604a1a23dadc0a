import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { exec } from './exec.js';

/** A mount point as /proc/self/mountinfo writes it (`\040` for a space) made plain. */
function unoctal(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
}

/** Mount points at or below `dir` (from /proc/self/mountinfo), deepest first. */
export function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => unoctal(l.split(' ')[4]!))
    .filter((m) => m === dir || m.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
}

/**
 * Unmounts everything at or below `dir`, deepest first, lazily (MNT_DETACH) when a mount is
 * busy, and returns what it took off. Throws when something stays mounted. Uses umount(8), so
 * that the kit needs none of the packages it tests.
 */
export function unmountUnderSync(dir: string): string[] {
  const done: string[] = [];
  for (let round = 0; round < 5; round++) {
    const mounts = mountsUnder(dir);
    if (!mounts.length) return done;
    for (const m of mounts) {
      if (spawnSync('umount', [m]).status !== 0) spawnSync('umount', ['-l', m]);
      done.push(m);
    }
  }
  return stillMounted(dir, done);
}

/** unmountUnderSync that keeps the test worker responsive while umount(8) runs. */
export async function unmountUnder(dir: string): Promise<string[]> {
  const done: string[] = [];
  for (let round = 0; round < 5; round++) {
    const mounts = mountsUnder(dir);
    if (!mounts.length) return done;
    for (const m of mounts) {
      if ((await exec('umount', [m])).status !== 0) await exec('umount', ['-l', m]);
      done.push(m);
    }
  }
  return stillMounted(dir, done);
}

function stillMounted(dir: string, done: string[]): string[] {
  const left = mountsUnder(dir);
  if (left.length) throw new Error(`could not unmount under ${dir}: ${left.join(', ')}`);
  return done;
}
