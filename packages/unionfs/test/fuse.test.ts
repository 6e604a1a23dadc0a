// What the fuse backend does beyond the conformance suite: its own paths to the data.
import { closeSync, fsyncSync, openSync, readFileSync, readSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Cleanups } from '@corral/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import { FuseUnionFs } from '../src/index.js';

const cleanups = new Cleanups();
afterEach(() => cleanups.run());

async function mount(options: ConstructorParameters<typeof FuseUnionFs>[0] = {}) {
  const root = cleanups.tempDir('unionfs-fuse', 'lower', 'upper', 'work', 'merged');
  const m = await new FuseUnionFs(options).mount({
    lower: [join(root, 'lower')],
    upper: join(root, 'upper'),
    work: join(root, 'work'),
    target: join(root, 'merged'),
  });
  cleanups.add(() => m.unmount({ detach: true }).catch(() => {}));
  return { root, m, merged: join(root, 'merged') };
}

function pattern(size: number): Buffer {
  const b = Buffer.alloc(size);
  let x = 12345;
  for (let i = 0; i < size; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

describe('fuse backend', () => {
  it('reads of a lower file (spliced from the layer) give its bytes at any offset and length', async () => {
    const size = 3 * 1024 * 1024 + 4321;
    const data = pattern(size);
    const { root, merged } = await mount();
    writeFileSync(join(root, 'lower/f'), data);
    expect(readFileSync(join(merged, 'f')).equals(data)).toBe(true);
    const fd = openSync(join(merged, 'f'), 'r');
    const buf = Buffer.alloc(300_000);
    for (const [at, len] of [
      [0, 1],
      [4095, 2],
      [size - 10, 100],
      [size, 10],
      [1_000_003, 300_000],
      [2 * 1024 * 1024 - 1, 131_073],
    ]) {
      const n = readSync(fd, buf, 0, len, at);
      expect(n).toBe(Math.max(0, Math.min(len, size - at)));
      expect(buf.subarray(0, n).equals(data.subarray(at, at + n))).toBe(true);
    }
    closeSync(fd);
  });

  it('passes reads and writes of upper files to the layer (no READ or WRITE reaches the server)', async () => {
    const log = join(cleanups.tempDir('unionfs-fuse-log'), 'server.log');
    const { root, merged, m } = await mount({ debug: true, log });
    const f = join(merged, 'up');
    writeFileSync(f, pattern(200_000));
    expect(readFileSync(f).equals(pattern(200_000))).toBe(true);
    const fd = openSync(f, 'r+');
    fsyncSync(fd);
    closeSync(fd);
    await m.unmount();
    expect(readFileSync(join(root, 'upper/up')).equals(pattern(200_000))).toBe(true);
    const text = readFileSync(log, 'utf8');
    // Kernels before 6.9 have no passthrough: the server reads and writes then.
    if (text.includes('passthrough on')) expect(text).not.toMatch(/fuse: (READ|WRITE) /);
    else expect(text).toMatch(/fuse: WRITE /);
  });

  it('with volatile, syncs return at once and the data is there', async () => {
    const { root, merged } = await mount({ volatile: true });
    writeFileSync(join(root, 'lower/big'), pattern(5_000_000));
    const fd = openSync(join(merged, 'big'), 'r+');
    fsyncSync(fd);
    closeSync(fd);
    expect(readFileSync(join(root, 'upper/big')).equals(pattern(5_000_000))).toBe(true);
  });
});
