import { mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { isMountPoint, MS, mount } from '@corral/sys';
import { removeTree, tempDir } from '@corral/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import { cleanupStale, OverlayUnionFs, UnionFsError } from '../src/index.js';

let root = '';
afterEach(() => {
  if (root) removeTree(root);
  root = '';
});

describe('cleanupStale', () => {
  it('takes off union mounts left at a mount point, stacked ones too', async () => {
    root = tempDir('unionfs', 'a', 'b', 'm');
    const target = join(root, 'm');
    // What a crash between mount and record leaves: mounts nobody tracks.
    await new OverlayUnionFs().mount({ lower: [join(root, 'a')], target });
    mount('overlay', target, 'overlay', MS.RDONLY, `lowerdir=${root}/a:${root}/b`);
    expect(cleanupStale(target)).toEqual({ unmounted: 2 });
    expect(isMountPoint(target)).toBe(false);
    expect(readdirSync(root).sort()).toEqual(['a', 'b', 'm']);
    expect(cleanupStale(target)).toEqual({ unmounted: 0 });
    expect(cleanupStale(join(root, 'never-made'))).toEqual({ unmounted: 0 });
  });

  it('leaves a mount that is not a union alone and says so', () => {
    root = tempDir('unionfs', 't');
    mount('corral-test', join(root, 't'), 'tmpfs', 0, 'size=1m');
    mkdirSync(join(root, 't/keep'));
    expect(() => cleanupStale(join(root, 't'))).toThrow(UnionFsError);
    expect(() => cleanupStale(join(root, 't'))).toThrow(/holds a tmpfs mount .* not a union mount/);
    expect(readdirSync(join(root, 't'))).toEqual(['keep']);
  });
});
