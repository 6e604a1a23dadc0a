// What the fuse backend does beyond the conformance suite: its own paths to the data.
import {
  closeSync,
  fsyncSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
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
  it("starts its server with the caller's environment without NODE_EXTRA_CA_CERTS (parsed at Node's start)", async () => {
    const saved = process.env.NODE_EXTRA_CA_CERTS;
    process.env.NODE_EXTRA_CA_CERTS = '/nonexistent/corral-extra-ca.pem';
    process.env.CORRAL_TEST_FUSE_ENV = 'kept';
    try {
      const { m } = await mount();
      const env = readFileSync(`/proc/${(m as { pid: number }).pid}/environ`, 'utf8').split('\0');
      expect(env).toContain('CORRAL_TEST_FUSE_ENV=kept');
      expect(env.filter((e) => e.startsWith('NODE_EXTRA_CA_CERTS='))).toEqual([]);
    } finally {
      if (saved === undefined) delete process.env.NODE_EXTRA_CA_CERTS;
      else process.env.NODE_EXTRA_CA_CERTS = saved;
      delete process.env.CORRAL_TEST_FUSE_ENV;
    }
  });

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

  it('declines STATX: the kernel asks GETATTR from then on, and only when it must', async () => {
    const log = join(cleanups.tempDir('unionfs-fuse-log'), 'server.log');
    const { root, merged, m } = await mount({ debug: true, log });
    for (let k = 0; k < 20; k++) writeFileSync(join(root, 'lower', `f${k}`), 'x'.repeat(k));
    // Node's stat is statx asking for the birth time, which the kernel cannot take from a
    // LOOKUP: it asks STATX once, is told ENOSYS, and from then on answers from GETATTR's and
    // the entries' attributes (no round trip per first stat; no birth time, as fuse-overlayfs).
    for (let k = 0; k < 20; k++) expect(statSync(join(merged, `f${k}`)).size).toBe(k);
    await m.unmount();
    const text = readFileSync(log, 'utf8');
    expect(text.match(/fuse: STATX .*-> ENOSYS/g)?.length ?? 0).toBeLessThanOrEqual(1);
    expect(text).not.toMatch(/fuse: STATX .*-> \d+ bytes/);
    expect(text.match(/fuse: GETATTR /g)?.length ?? 0).toBeLessThan(20);
  });

  it('lists a folder once: later listings come from the kernel, with no OPENDIR or RELEASEDIR', async () => {
    const log = join(cleanups.tempDir('unionfs-fuse-log'), 'server.log');
    const { root, merged, m } = await mount({ debug: true, log });
    const names = Array.from({ length: 10 }, (_, k) => `n${k}`);
    for (const n of names) writeFileSync(join(root, 'lower', n), n);
    for (let k = 0; k < 3; k++) expect(readdirSync(merged).sort()).toEqual(names.sort());
    // A change through the union shows in the next listing (the kernel drops what it kept).
    writeFileSync(join(merged, 'added'), 'a');
    expect(readdirSync(merged)).toContain('added');
    await m.unmount();
    const text = readFileSync(log, 'utf8');
    // OPENDIR is answered ENOSYS once (FUSE_NO_OPENDIR_SUPPORT), then never sent.
    expect(text.match(/fuse: OPENDIR /g)?.length ?? 0).toBeLessThanOrEqual(1);
    expect(text).not.toMatch(/fuse: RELEASEDIR /);
    // The first listing and the one after the change: the listing and its empty end each.
    expect(text.match(/fuse: READDIR(PLUS)? /g)?.length ?? 0).toBeLessThanOrEqual(4);
  });

  it('with volatile, syncs return at once and the data is there', async () => {
    const { root, merged } = await mount({ volatile: true });
    writeFileSync(join(root, 'lower/big'), pattern(5_000_000));
    const fd = openSync(join(merged, 'big'), 'r+');
    fsyncSync(fd);
    closeSync(fd);
    expect(readFileSync(join(root, 'upper/big')).equals(pattern(5_000_000))).toBe(true);
  });

  it('an open that copies a file up is answered before the copy is on disk; its fsync waits for the copy in upper', async () => {
    const size = 48 * 1024 * 1024 + 17;
    const data = pattern(size);
    const { root, merged } = await mount();
    for (let round = 0; round < 3; round++) {
      const name = `big${round}`;
      writeFileSync(join(root, 'lower', name), data);
      // Written through the open file while its copy-up may still be waiting for the disk.
      const fd = openSync(join(merged, name), 'r+');
      writeSync(fd, 'Z', 1000);
      fsyncSync(fd);
      // The fsync returned: the copy is linked in upper, with every byte and the write.
      const up = readFileSync(join(root, 'upper', name));
      closeSync(fd);
      expect(up.length).toBe(size);
      expect(up[1000]).toBe('Z'.charCodeAt(0));
      expect(up.subarray(0, 1000).equals(data.subarray(0, 1000))).toBe(true);
      expect(up.subarray(1001).equals(data.subarray(1001))).toBe(true);
    }
    // Nothing left in the work folder, and the merged view agrees.
    expect(readdirSync(join(root, 'work')).filter((n) => n.startsWith('#'))).toEqual([]);
    expect(readFileSync(join(merged, 'big2'))[1000]).toBe('Z'.charCodeAt(0));
  });
});
