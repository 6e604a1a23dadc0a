import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isMountPoint } from '@corral/sys';
import { removeTree, tempDir } from '@corral/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import { parseOverlayOptions } from '../src/index.js';

const BIN = fileURLToPath(new URL('../bin/corral-unionfs.js', import.meta.url));
const run = (...args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });

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

  it('fails clearly: fuse backend, missing lower, busy mount point, bad options', () => {
    root = tempDir('unionfs', 'a', 'm');
    const fuse = run('--backend', 'fuse', '-o', `lowerdir=${root}/a`, join(root, 'm'));
    expect(fuse.status).toBe(1);
    expect(fuse.stderr).toMatch(/the fuse backend is not available yet/);
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
