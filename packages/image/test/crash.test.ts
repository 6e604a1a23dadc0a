import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { flock, LOCK } from '@corral/sys';
import { Cleanups } from '@corral/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commit, ImageStore, importRootfs, loadArchive, saveArchive } from '../src/index.js';
import { makeTar } from './helpers.js';

// Loads run in child processes (the built package), so a test can SIGKILL one half way.
const pkg = join(import.meta.dirname, '..');
const child = join(import.meta.dirname, 'fixtures-load-child.mjs');
const LAYERS = 3;
const fileCleanup = new Cleanups();
let tmp: string;
let archive: string;

beforeAll(async () => {
  execFileSync('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: pkg });
  tmp = fileCleanup.tempDir('image');
  const store = new ImageStore(join(tmp, 'source'));
  await importRootfs(store, Readable(await makeTar([{ name: 'base', body: 'b' }])), { names: ['big:0'] });
  // Random (incompressible) files make each layer slow enough to be interrupted.
  for (let i = 1; i <= LAYERS; i++) {
    const upper = join(tmp, `upper${i}`);
    fs.mkdirSync(upper);
    for (let f = 0; f < 4; f++) fs.writeFileSync(join(upper, `data${f}`), randomBytes(6 * 1024 * 1024));
    await commit(store, { base: `big:${i - 1}`, upperDir: upper, names: [`big:${i}`] });
  }
  archive = join(tmp, 'big.tar');
  await saveArchive(store, [`big:${LAYERS}`], fs.createWriteStream(archive));
}, 120_000);
afterAll(() => fileCleanup.run());

function Readable(data: Buffer) {
  return (async function* () {
    yield data;
  })();
}

function startLoad(root: string) {
  const p = spawn(process.execPath, [child, root, archive], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  p.stdout.on('data', (d) => {
    out += d;
  });
  p.stderr.on('data', (d) => {
    err += d;
  });
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string; err: string }>(
    (res) => p.on('close', (code, signal) => res({ code, signal, out, err })),
  );
  return { p, done };
}

describe('interrupted and concurrent loads', () => {
  it('a load killed half way leaves the store consistent, and a reload works', async () => {
    const root = join(tmp, `killed-${Date.now()}`);
    new ImageStore(root);
    const load = startLoad(root);
    // Kill once the first layer is unpacked and recorded, while the others are still to come.
    for (;;) {
      if (fs.readdirSync(join(root, 'layers')).length >= 1) break;
      if (load.p.exitCode !== null) break;
      await sleep(2);
    }
    load.p.kill('SIGKILL');
    const ended = await load.done;
    expect(ended.signal).toBe('SIGKILL');

    const store = new ImageStore(root);
    expect(store.records()).toEqual([]);
    expect(store.resolve(`big:${LAYERS}`)).toBeUndefined();
    expect(store.check()).toEqual([]);
    expect(fs.readdirSync(join(root, 'tmp'))).toEqual([]);
    // The dead loader's flocks went with it: every lock file is free.
    for (const n of fs.readdirSync(join(root, 'locks')).filter((x) => x !== 'active')) {
      const fd = fs.openSync(join(root, 'locks', n), 'r');
      expect(flock(fd, LOCK.EX | LOCK.NB)).toBe(true);
      fs.closeSync(fd);
    }

    // What the killed load did store is verified cache nothing refers to: prune takes the
    // store back to exactly its state before the load (empty).
    const pruned = await store.prune();
    expect(pruned.deletedImages).toEqual([]);
    expect(store.content.listBlobs()).toEqual([]);
    expect(fs.readdirSync(store.layersRoot)).toEqual([]);

    const result = await loadArchive(store, archive);
    expect(result.images[0].names).toEqual([`big:${LAYERS}`]);
    expect(store.layerDirs(`big:${LAYERS}`)).toHaveLength(LAYERS + 1);
    expect(store.check()).toEqual([]);
  });

  it('two processes loading the same layers at once neither corrupt nor duplicate them', async () => {
    const root = join(tmp, `concurrent-${Date.now()}`);
    new ImageStore(root);
    const [a, b] = await Promise.all([startLoad(root).done, startLoad(root).done]);
    expect([a.code, b.code, a.err, b.err]).toEqual([0, 0, '', '']);
    const store = new ImageStore(root);
    expect(fs.readdirSync(store.layersRoot)).toHaveLength(LAYERS + 1);
    expect(store.records()).toHaveLength(1);
    expect(store.check()).toEqual([]);
  });
});
