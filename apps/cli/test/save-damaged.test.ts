import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { imageArchive, removeTree, tempDir } from '@corral/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { Sandbox } from './helpers.js';

// Issue 17: save shipped a blob damaged in the store and exited 0. Now it fails naming the
// blob, and with -o no file (whole or partial) is left under the name asked for.

const s = new Sandbox();
const dir = tempDir('damaged-save');
afterAll(async () => {
  await s.teardown();
  removeTree(dir);
});

describe('save of an image with a damaged blob', () => {
  it('fails with the blob name and leaves no output file', async () => {
    const archive = imageArchive(dir, {
      tag: 'dmg:1',
      files: { '/big': 'y'.repeat(200_000) },
    });
    expect((await s.corral(['load', '-i', archive])).status).toBe(0);
    const whole = join(s.root, 'whole.tar');
    expect((await s.corral(['save', '-o', whole, 'dmg:1'])).status).toBe(0);
    // The layer is the biggest blob: flip a byte in its middle, keeping its size.
    const blobs = join(s.root, 'image', 'blobs', 'sha256');
    const [layer] = readdirSync(blobs)
      .map((n) => ({ n, size: readFileSync(join(blobs, n)).length }))
      .sort((a, b) => b.size - a.size);
    const path = join(blobs, layer!.n);
    const bytes = readFileSync(path);
    bytes[bytes.length >> 1] = bytes[bytes.length >> 1]! ^ 0xff;
    writeFileSync(path, bytes);

    const file = join(s.root, 'damaged.tar');
    const r = await s.corral(['save', '-o', file, 'dmg:1']);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`sha256:${layer!.n}`);
    // The library says what is damaged; the CLI adds its own command for the repair.
    expect(r.stderr).toMatch(/the store is damaged.*: run `corral system check --repair`/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(existsSync(file)).toBe(false);
    expect(readdirSync(s.root).filter((n) => n.includes('damaged'))).toEqual([]);
  });
});
