import * as fs from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { lgetxattr } from '@corral/sys';
import { Cleanups } from '@corral/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import { applyLayer } from '../src/index.js';
import { listTree, makeTar, type TarEntry } from './helpers.js';

// Each case gets a fresh sandbox: SANDBOX/layer is the layer root, SANDBOX/outside a
// neighbour with a bait file. After applying, nothing may have changed outside the layer.
const cleanup = new Cleanups();
afterEach(() => cleanup.run());

function sandbox() {
  const tmp = cleanup.tempDir('image');
  const layer = join(tmp, 'layer');
  const outside = join(tmp, 'outside');
  fs.mkdirSync(layer);
  fs.mkdirSync(outside);
  fs.writeFileSync(join(outside, 'bait'), 'original');
  return { dir: tmp, layer, outside };
}

async function run(entries: TarEntry[]) {
  const box = sandbox();
  const before = listTree(box.dir).filter((p) => !p.startsWith('layer/'));
  let error: unknown;
  try {
    await applyLayer(Readable.from([await makeTar(entries)]), box.layer);
  } catch (e) {
    error = e;
  }
  const after = listTree(box.dir).filter((p) => !p.startsWith('layer/'));
  expect(after).toEqual(before);
  expect(fs.readFileSync(join(box.outside, 'bait'), 'utf8')).toBe('original');
  expect(fs.lstatSync(join(box.outside, 'bait')).nlink).toBe(1);
  return { ...box, error };
}

const rel = '../outside';

describe('hostile layers never write outside the layer', () => {
  it('absolute paths are kept inside the layer', async () => {
    const r = await run([{ name: '/abs/file', body: 'x' }]);
    expect(r.error).toBeUndefined();
    expect(fs.readFileSync(join(r.layer, 'abs/file'), 'utf8')).toBe('x');
  });

  it('".." climbing out is refused', async () => {
    const r = await run([{ name: `${rel}/bait`, body: 'pwned' }]);
    expect(r.error).toMatchObject({ code: 'UNSAFE_PATH' });
    expect(String((r.error as Error).message)).toContain('..');
  });

  it('".." hidden mid-path (a/../../x) is refused', async () => {
    const r = await run([{ name: 'a/../../outside/new', body: 'x' }]);
    expect(r.error).toMatchObject({ code: 'UNSAFE_PATH' });
  });

  it('a symlink to an absolute outside path, then a file written through it, stays inside', async () => {
    const box = sandbox();
    const r = await run([
      { name: 'escape', type: 'symlink', linkname: box.outside },
      { name: 'escape/bait', body: 'pwned' },
      { name: 'escape/new', body: 'pwned' },
    ]);
    expect(r.error).toBeUndefined();
    expect(fs.readFileSync(join(box.outside, 'bait'), 'utf8')).toBe('original');
    expect(fs.existsSync(join(box.outside, 'new'))).toBe(false);
    // The absolute target resolved against the layer root instead.
    expect(fs.readFileSync(join(r.layer, box.outside, 'new'), 'utf8')).toBe('pwned');
  });

  it('a relative symlink climbing out, then a file through it, stays inside', async () => {
    const r = await run([
      { name: 'up', type: 'symlink', linkname: '../../../../../../..' },
      { name: 'up/outside/bait', body: 'pwned' },
      { name: 'dir/', type: 'directory' },
      { name: 'dir/rel', type: 'symlink', linkname: `../${rel}` },
      { name: 'dir/rel/bait', body: 'pwned' },
    ]);
    expect(r.error).toBeUndefined();
    expect(fs.readFileSync(join(r.layer, 'outside/bait'), 'utf8')).toBe('pwned');
  });

  it('a symlink entry whose name is then reused as a file replaces the link, not its target', async () => {
    const box = sandbox();
    const r = await run([
      { name: 'link', type: 'symlink', linkname: join(box.outside, 'bait') },
      { name: 'link', body: 'pwned' },
    ]);
    expect(r.error).toBeUndefined();
    expect(fs.readFileSync(join(r.layer, 'link'), 'utf8')).toBe('pwned');
  });

  it('a symlink to a folder outside, then a folder entry and metadata through it, stays inside', async () => {
    const box = sandbox();
    const r = await run([
      { name: 'd', type: 'symlink', linkname: box.outside },
      { name: 'd/', type: 'directory', mode: 0o777 },
      { name: 'd/bait', type: 'fifo' },
    ]);
    expect(r.error).toBeUndefined();
    expect(fs.lstatSync(join(r.layer, 'd')).isDirectory()).toBe(true);
    expect(fs.lstatSync(box.outside).mode & 0o777).not.toBe(0o777);
  });

  it('a hard link to a path outside (absolute) is refused, nothing linked', async () => {
    const box = sandbox();
    const r = await run([{ name: 'hl', type: 'link', linkname: join(box.outside, 'bait') }]);
    expect(r.error).toMatchObject({ code: 'BAD_LAYER' });
  });

  it('a hard link with ".." out is refused', async () => {
    const r = await run([{ name: 'hl', type: 'link', linkname: `${rel}/bait` }]);
    expect(r.error).toMatchObject({ code: 'UNSAFE_PATH' });
  });

  it('a hard link through a symlink to outside links inside the layer only', async () => {
    const box = sandbox();
    const r = await run([
      { name: 'out', type: 'symlink', linkname: box.outside },
      { name: 'hl', type: 'link', linkname: 'out/bait' },
    ]);
    // out/bait resolves to LAYER/<outside>/bait, which the layer does not hold.
    expect(r.error).toMatchObject({ code: 'BAD_LAYER' });
  });

  it('a hard link to a symlink pointing outside links the symlink itself', async () => {
    const box = sandbox();
    const r = await run([
      { name: 'sl', type: 'symlink', linkname: join(box.outside, 'bait') },
      { name: 'hl', type: 'link', linkname: 'sl' },
      { name: 'hl', type: 'link', linkname: 'sl' },
    ]);
    expect(r.error).toBeUndefined();
    expect(fs.lstatSync(join(r.layer, 'hl')).isSymbolicLink()).toBe(true);
  });

  it('a whiteout reaching out through a symlinked parent only whites out inside', async () => {
    const box = sandbox();
    const r = await run([{ name: 'o', type: 'symlink', linkname: box.outside }, { name: 'o/.wh.bait' }]);
    expect(r.error).toBeUndefined();
    expect(fs.lstatSync(join(r.layer, box.outside, 'bait')).isCharacterDevice()).toBe(true);
    const out = await run([{ name: `${rel}/.wh.bait` }]);
    expect(out.error).toMatchObject({ code: 'UNSAFE_PATH' });
  });

  it('a symlink loop is refused, not followed forever', async () => {
    const r = await run([
      { name: 'a', type: 'symlink', linkname: 'b' },
      { name: 'b', type: 'symlink', linkname: 'a' },
      { name: 'a/x', body: 'x' },
    ]);
    expect(r.error).toMatchObject({ code: 'UNSAFE_PATH' });
  });

  it('overlay xattrs in a tar are dropped', async () => {
    const r = await run([
      { name: 'd/', type: 'directory', pax: { 'SCHILY.xattr.trusted.overlay.redirect': '/etc' } },
    ]);
    expect(r.error).toBeUndefined();
    expect(lgetxattr(join(r.layer, 'd'), 'trusted.overlay.redirect')).toBeNull();
  });
});
