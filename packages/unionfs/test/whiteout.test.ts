import { existsSync, lstatSync, mkdirSync, readdirSync, rmSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { removeTree, tempDir } from '@corral/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import { buildLayer } from '../src/conformance/layers.js';
import { OverlayUnionFs } from '../src/index.js';
import {
  isOpaque,
  isOverlayXattr,
  isWhiteout,
  makeWhiteout,
  markOpaque,
  ociWhiteoutName,
  parseOciName,
  WHITEOUT_OPAQUE,
} from '../src/whiteout.js';

let root = '';
afterEach(() => {
  if (root) removeTree(root);
  root = '';
});

describe('the overlay whiteout format (one module for unionfs and image)', () => {
  it('reads what the kernel writes: a deleted file is a whiteout, a folder made again is opaque', async () => {
    root = tempDir('whiteout', 'u', 'w', 'm');
    buildLayer(join(root, 'l0'), { gone: 'g', kept: 'k', dir: { old: 'o' } });
    const m = await new OverlayUnionFs().mount({
      lower: [join(root, 'l0')],
      upper: join(root, 'u'),
      work: join(root, 'w'),
      target: join(root, 'm'),
    });
    unlinkSync(join(root, 'm', 'gone'));
    rmSync(join(root, 'm', 'dir'), { recursive: true });
    mkdirSync(join(root, 'm', 'dir'));
    await m.unmount();
    expect(isWhiteout(lstatSync(join(root, 'u', 'gone')))).toBe(true);
    expect(isOpaque(join(root, 'u', 'dir'))).toBe(true);
    expect(existsSync(join(root, 'u', 'kept'))).toBe(false);
    expect(isWhiteout(lstatSync(join(root, 'l0', 'kept')))).toBe(false);
    expect(isOpaque(join(root, 'l0', 'dir'))).toBe(false);
  });

  it('writes what the kernel reads: a made whiteout and opaque folder hide the layer below', async () => {
    root = tempDir('whiteout', 'm');
    buildLayer(join(root, 'l0'), { gone: 'g', kept: 'k', dir: { old: 'o' } });
    mkdirSync(join(root, 'l1'));
    makeWhiteout(join(root, 'l1', 'gone'));
    mkdirSync(join(root, 'l1', 'dir'));
    markOpaque(join(root, 'l1', 'dir'));
    const m = await new OverlayUnionFs().mount({
      lower: [join(root, 'l1'), join(root, 'l0')],
      target: join(root, 'm'),
    });
    try {
      expect(readdirSync(join(root, 'm')).sort()).toEqual(['dir', 'kept']);
      expect(readdirSync(join(root, 'm', 'dir'))).toEqual([]);
    } finally {
      await m.unmount();
    }
  });

  it('maps OCI tar names: .wh.NAME, the opaque marker, aufs bookkeeping, ordinary names', () => {
    expect(parseOciName('.wh.passwd')).toEqual({ kind: 'whiteout', name: 'passwd' });
    expect(parseOciName(WHITEOUT_OPAQUE)).toEqual({ kind: 'opaque' });
    expect(parseOciName('.wh..wh.plnk')).toEqual({ kind: 'aufs-meta' });
    expect(parseOciName('.wh.')).toEqual({ kind: 'whiteout', name: '' });
    expect(parseOciName('.whatever')).toEqual({ kind: 'entry' });
    expect(parseOciName(ociWhiteoutName('x y'))).toEqual({ kind: 'whiteout', name: 'x y' });
    expect(isOverlayXattr('trusted.overlay.redirect')).toBe(true);
    expect(isOverlayXattr('user.overlay.opaque')).toBe(true);
    expect(isOverlayXattr('user.mime')).toBe(false);
  });
});
