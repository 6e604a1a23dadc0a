import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isMountPoint } from '@corral/sys';
import { removeTree, tempDir, until } from '@corral/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import { parseOverlayOptions } from '../src/index.js';

const BIN = fileURLToPath(new URL('../bin/corral-unionfs.js', import.meta.url));
const run = (...args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });

/** The pid of the process holding /dev/fuse for the mount at `target` (its server). */
function serverOf(target: string): number {
  const ps = spawnSync('pgrep', ['-f', `fuse/main.js .*${target}`], { encoding: 'utf8' });
  return Number(ps.stdout.trim().split('\n')[0] || 0);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

let root = '';
afterEach(() => {
  if (root) removeTree(root);
  root = '';
});

describe('corral-unionfs', () => {
  it('mounts and unmounts with fuse-overlayfs options, and prints the diff', () => {
    root = tempDir('unionfs', 'a', 'b', 'u', 'm');
    writeFileSync(join(root, 'a/x'), 'a');
    writeFileSync(join(root, 'b/x'), 'b');
    writeFileSync(join(root, 'b/y'), 'y');
    const o = `lowerdir=${root}/a:${root}/b,upperdir=${root}/u,workdir=${root}/w`;
    const up = run('-o', o, join(root, 'm'));
    expect(up.stderr).toBe('');
    expect(up.status).toBe(0);
    expect(readFileSync(join(root, 'm/x'), 'utf8')).toBe('a');
    writeFileSync(join(root, 'm/z'), 'z');
    const diff = run('diff', '-o', `lowerdir=${root}/a:${root}/b,upperdir=${root}/u`);
    expect(diff.stdout).toBe('A /z\n');
    const down = run('umount', join(root, 'm'));
    expect(down.status).toBe(0);
    expect(isMountPoint(join(root, 'm'))).toBe(false);
  });

  it('with --backend fuse returns once the mount answers; umount ends its server', async () => {
    root = tempDir('unionfs', 'a', 'b', 'u', 'w', 'm');
    writeFileSync(join(root, 'a/x'), 'a');
    writeFileSync(join(root, 'b/y'), 'y');
    const o = `lowerdir=${root}/a:${root}/b,upperdir=${root}/u,workdir=${root}/w`;
    const up = run('--backend', 'fuse', '-o', o, join(root, 'm'));
    expect(up.stderr).toBe('');
    expect(up.status).toBe(0);
    expect(readFileSync(join(root, 'm/y'), 'utf8')).toBe('y');
    writeFileSync(join(root, 'm/z'), 'z');
    expect(readFileSync(join(root, 'u/z'), 'utf8')).toBe('z');
    const server = serverOf(join(root, 'm'));
    expect(server).toBeGreaterThan(0);
    expect(run('umount', join(root, 'm')).status).toBe(0);
    expect(isMountPoint(join(root, 'm'))).toBe(false);
    await until(() => !alive(server), 'the server to end');
  });

  it('with -f the server stays in the foreground until the mount is taken off', async () => {
    root = tempDir('unionfs', 'a', 'm');
    writeFileSync(join(root, 'a/x'), 'a');
    const fg = spawn(
      process.execPath,
      [BIN, '--backend', 'fuse', '-f', '-o', `lowerdir=${root}/a`, join(root, 'm')],
      {
        stdio: 'ignore',
      },
    );
    const exited = new Promise<number | null>((resolve) => fg.on('exit', resolve));
    await until(() => isMountPoint(join(root, 'm')), 'the foreground server to mount');
    expect(readFileSync(join(root, 'm/x'), 'utf8')).toBe('a');
    expect(run('umount', join(root, 'm')).status).toBe(0);
    expect(await exited).toBe(0);
  });

  it('fails clearly: missing lower, busy mount point, bad options', () => {
    root = tempDir('unionfs', 'a', 'm');
    const missing = run('-o', `lowerdir=${root}/nope`, join(root, 'm'));
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/lower layer .*nope does not exist/);
    expect(run('-o', `lowerdir=${root}/a`, join(root, 'm')).status).toBe(0);
    const busy = run('-o', `lowerdir=${root}/a`, join(root, 'm'));
    expect(busy.stderr).toMatch(/already in use/);
    const bad = run('-o', 'lowerdir=/x,squash_to_root', join(root, 'm'));
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/unsupported option "squash_to_root"/);
    expect(run('umount', join(root, 'm')).status).toBe(0);
  });

  it('parses escaped commas and colons in paths', () => {
    expect(parseOverlayOptions(['lowerdir=/a\\:b:/c\\,d,upperdir=/u\\,1', 'workdir=/w'])).toEqual({
      lower: ['/a:b', '/c,d'],
      upper: '/u,1',
      work: '/w',
    });
  });
});
