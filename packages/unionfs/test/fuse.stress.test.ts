// Several processes read and write the fuse union at once for a while (CORRAL_STRESS_SECONDS,
// a minute by default); then every byte each wrote must be there, in the union and again
// after a fresh mount, the files they only read unchanged, and nothing else made.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Cleanups } from '@corral/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import { buildLayer, snapshot } from '../src/conformance/index.js';
import { FuseUnionFs, type UnionMount } from '../src/index.js';

const SECONDS = Number(process.env.CORRAL_STRESS_SECONDS ?? 60);
const WORKERS = 6;
const WORKER = fileURLToPath(new URL('./fixtures/stress-worker.mjs', import.meta.url));
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

const cleanups = new Cleanups();
afterEach(() => cleanups.run());

function pattern(size: number, seed: number): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i += 4) b.writeUInt32LE((Math.imul(i + 1, 2654435761) ^ seed) >>> 0, i);
  return b;
}

describe('fuse union under load', () => {
  it(`${WORKERS} processes reading and writing for ${SECONDS} s lose and change nothing`, {
    timeout: (SECONDS + 120) * 1000,
  }, async () => {
    const root = cleanups.tempDir('unionfs-stress', 'upper', 'work', 'merged', 'models');
    const lower: Record<string, Buffer | string> = {};
    const hashes: Record<string, string> = {};
    for (let i = 0; i < 40; i++) {
      lower[`s${i}`] = pattern(16384 + i * 4096, i);
      hashes[`s${i}`] = sha(lower[`s${i}`] as Buffer);
    }
    for (let i = 0; i < WORKERS * 3; i++) lower[`l${i}`] = pattern(65536, 1000 + i);
    lower['shared.json'] = JSON.stringify({ count: 40, hashes });
    buildLayer(join(root, 'lower'), lower);
    const lowerBefore = snapshot(join(root, 'lower'), true);
    const opts = {
      lower: [join(root, 'lower')],
      upper: join(root, 'upper'),
      work: join(root, 'work'),
      target: join(root, 'merged'),
    };
    const fs = new FuseUnionFs({ log: join(root, 'server.log') });
    let m: UnionMount = await fs.mount(opts);
    cleanups.add(() => m.unmount({ detach: true }).catch(() => {}));

    const merged = join(root, 'merged');
    const codes = await Promise.all(
      Array.from({ length: WORKERS }, (_, k) => {
        const p = spawn(
          process.execPath,
          [WORKER, merged, String(k), String(SECONDS), join(root, 'models', `${k}.json`)],
          {
            stdio: ['ignore', 'ignore', 'inherit'],
          },
        );
        return new Promise<number | null>((resolve) => p.on('exit', resolve));
      }),
    );
    expect(codes).toEqual(Array(WORKERS).fill(0));

    const expected: Record<string, string> = {
      ...hashes,
      'shared.json': sha(Buffer.from(lower['shared.json'] as string)),
    };
    let ops = 0;
    for (let k = 0; k < WORKERS; k++) {
      const model = JSON.parse(readFileSync(join(root, 'models', `${k}.json`), 'utf8'));
      ops += model.ops;
      Object.assign(expected, model.files);
    }
    expect(ops).toBeGreaterThan(WORKERS * 100);
    const check = () => {
      const seen: Record<string, string> = {};
      for (const name of readdirSync(merged)) seen[name] = sha(readFileSync(join(merged, name)));
      expect(seen).toEqual(expected);
    };
    check();
    // A fresh server reads the same from the layers.
    await m.unmount();
    m = await fs.mount(opts);
    check();
    expect(snapshot(join(root, 'lower'), true)).toEqual(lowerBefore);
    expect(readdirSync(join(root, 'work'))).toEqual([]);
    writeFileSync(join(merged, 'still-writable'), 'yes');
    await m.unmount();
    expect(readFileSync(join(root, 'server.log'), 'utf8')).toBe('');
  });
});
