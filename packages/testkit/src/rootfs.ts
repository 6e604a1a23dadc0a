import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';

/** Debian's busybox-static, the one program of every test root filesystem. */
export const BUSYBOX = '/bin/busybox';

let applets: string[] | undefined;

/** The applets busybox has (`busybox --list`), read once. */
export function busyboxApplets(): string[] {
  if (!applets) {
    if (!existsSync(BUSYBOX)) {
      throw new Error(`${BUSYBOX} is missing: install Debian's busybox-static (bash scripts/setup.sh does)`);
    }
    const list = spawnSync(BUSYBOX, ['--list'], { encoding: 'utf8' }).stdout;
    applets = list.split('\n').filter((a) => a && a !== 'busybox');
  }
  return applets;
}

/**
 * A busybox root filesystem at `dir`: bin/busybox (a copy of the static binary) and a symlink
 * in bin/ per applet, plus the named empty folders (`etc`, `tmp`, `proc`, ...). Returns `dir`.
 */
export function busyboxRootfs(dir: string, ...subdirs: string[]): string {
  mkdirSync(join(dir, 'bin'), { recursive: true });
  for (const d of subdirs) mkdirSync(join(dir, d), { recursive: true });
  copyFileSync(BUSYBOX, join(dir, 'bin/busybox'));
  for (const a of busyboxApplets()) symlinkSync('busybox', join(dir, 'bin', a));
  return dir;
}
