import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { corralBin, imageArchive, removeTree, tempDir } from '@corral/testkit';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Sandbox } from './helpers.js';

// Issue 17's races, each for real: parallel CLI processes on one data root.

const s = new Sandbox();
const made: string[] = [];
/** A temp folder of this file, removed after its tests (also when one fails). */
const temp = (name: string) => {
  const d = tempDir(name);
  made.push(d);
  return d;
};
afterAll(async () => {
  await s.teardown();
  for (const d of made) removeTree(d);
});
afterEach(async () => {
  const ids = (await s.corral(['ps', '-aq'])).out.split('\n').filter(Boolean);
  if (ids.length) await s.corral(['rm', '-f', ...ids]);
});

interface Outcome {
  status: number | null;
  out: string;
  err: string;
}

/** Starts a CLI command on the sandbox's root without waiting for it. */
function start(args: string[], root = s.root): Promise<Outcome> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [corralBin, '--root', root, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => {
      out += d;
    });
    p.stderr.on('data', (d) => {
      err += d;
    });
    p.on('close', (status) => resolve({ status, out: out.trim(), err: err.trim() }));
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const list = (...parts: string[]) => {
  const dir = join(s.root, ...parts);
  return existsSync(dir) ? readdirSync(dir) : [];
};
/** No stack trace, no raw library error class: what a user sees is a sentence. */
const clean = (o: Outcome) =>
  expect(o.err).not.toMatch(/\n\s+at |Error:.*\n.*node:internal|ImageError|SyntaxError/);

function nothingLeft(): void {
  expect(list('containers')).toEqual([]);
  expect(list('runtime')).toEqual([]);
  expect(list('names')).toEqual([]);
  expect(list('image', 'holds')).toEqual([]);
  expect(s.mounts()).toEqual([]);
}

describe('rm -f against logs -f and exec on the same container', () => {
  it('ends them with clear answers, never a crash, and leaves nothing', async () => {
    for (const delay of [0, 300, 1200]) {
      await s.corral([
        'run',
        '-d',
        '--name',
        'target',
        'busybox',
        'sh',
        '-c',
        'while :; do echo tick; sleep 0.1; done',
      ]);
      const logs = start(['logs', '-f', 'target']);
      const exec = start(['exec', 'target', 'sleep', '30']);
      await sleep(delay);
      const rm = await start(['rm', '-f', 'target']);
      const [l, e] = await Promise.all([logs, exec]);
      expect(rm.status, rm.err).toBe(0);
      for (const o of [rm, l, e]) clean(o);
      // logs -f ends when the container goes (or says it is not there, when it came too late).
      if (l.status !== 0) expect(l.err).toMatch(/No such container/);
      // exec dies with the container (137), or could not begin: not running / not there.
      if (e.status !== 137) expect(e.err).toMatch(/No such container|is not running/);
      nothingLeft();
    }
  }, 300_000);
});

describe('parallel run --name with one name', () => {
  it("lets exactly one win; the others get Docker's Conflict message; nothing half-made is left", async () => {
    await s.corral(['run', '--rm', 'busybox', 'true']); // the image, made once
    const runs = await Promise.all(
      Array.from({ length: 6 }, () => start(['run', '-d', '--name', 'one', 'busybox', 'sleep', '60'])),
    );
    const won = runs.filter((r) => r.status === 0);
    expect(won, JSON.stringify(runs, null, 1)).toHaveLength(1);
    for (const r of runs.filter((x) => x.status !== 0)) {
      clean(r);
      expect(r.status).toBe(125);
      expect(r.err).toContain(
        `Conflict. The container name "/one" is already in use by container "${won[0]!.out}". You have to remove (or rename) that container to be able to reuse that name.`,
      );
    }
    expect(list('containers')).toEqual([won[0]!.out]);
    expect(list('names')).toEqual(['one']);
    expect(list('image', 'holds')).toEqual([]);
    expect((await s.corral(['exec', 'one', 'true'])).status).toBe(0);
    await s.corral(['rm', '-f', 'one']);
    nothingLeft();
  }, 300_000);
});

describe('parallel loads of one archive', () => {
  it('store one copy: one record, one layer, the blobs of one load', async () => {
    const archive = imageArchive(temp('race-archive'), { tag: 'twice:1', files: { '/x': 'x' } });
    const single = temp('race-single');
    expect((await start(['load', '-i', archive], single)).status).toBe(0);
    const blobs = readdirSync(join(single, 'image', 'blobs', 'sha256')).sort();
    const root = temp('race-loads');
    const at = (...parts: string[]) => readdirSync(join(root, 'image', ...parts));
    const loads = await Promise.all(Array.from({ length: 6 }, () => start(['load', '-i', archive], root)));
    for (const l of loads) {
      clean(l);
      expect(l.status, l.err).toBe(0);
      expect(l.out).toBe('Loaded image: twice:1');
    }
    expect(at('images')).toHaveLength(1);
    expect(at('l')).toHaveLength(1);
    expect(at('blobs', 'sha256').sort()).toEqual(blobs);
    expect(at('tmp')).toEqual([]);
    expect(
      (await start(['run', '--rm', '--network', 'none', '--pull', 'never', 'twice:1', 'cat', '/x'], root))
        .out,
    ).toBe('x');
  }, 300_000);
});
