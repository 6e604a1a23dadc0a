import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { Cleanups } from '@corral/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import { ImageStore, type ImageUser } from '../src/index.js';
import { acquireLock, tempName } from '../src/store/fsutil.js';
import { SELF_OWNER } from '../src/store/owner.js';
import { storeOneLayerImage } from './helpers.js';

const cleanup = new Cleanups();
afterEach(() => cleanup.run());

function newStore(users?: (id: string) => ImageUser[]): ImageStore {
  return new ImageStore(join(cleanup.tempDir('in-use'), 'image'), users ? { users } : {});
}

function storeImage(store: ImageStore, body: string, names: string[]) {
  return storeOneLayerImage(store, { body, names });
}

/** The PID and start time of a process that has ended (a PID + start time no process has). */
function deadOwner(): string {
  const r = spawnSync('sh', ['-c', 'echo $$ $(cut -d" " -f22 /proc/$$/stat)'], { encoding: 'utf8' });
  const [pid, start] = r.stdout.trim().split(' ');
  return `${pid}.${start}`;
}

describe('images in use', () => {
  it('refuses removal, even forced, while a running container uses the image', async () => {
    let users: ImageUser[] = [{ id: 'c'.repeat(64), running: true }];
    const store = newStore(() => users);
    const rec = await storeImage(store, '1', ['run:1']);
    for (const ref of ['run:1', rec.id]) {
      const err = await store.remove(ref, { force: true }).catch((e) => e);
      expect(err).toMatchObject({ code: 'IN_USE' });
      expect(err.message).toBe(
        `conflict: unable to delete ${rec.id.slice(7, 19)} (cannot be forced) - image is being used by running container cccccccccccc`,
      );
    }
    await expect(store.prune({ all: true })).resolves.toMatchObject({ deletedImages: [] });
    expect(store.resolve('run:1')?.id).toBe(rec.id);
    users = [];
    await expect(store.remove('run:1')).resolves.toEqual({ untagged: ['run:1'], deleted: [rec.id] });
    expect(fs.readdirSync(store.layersRoot)).toEqual([]);
  });

  it('a create holding the image keeps it through a forced removal; a hold after it finds nothing', async () => {
    const store = newStore();
    const other = new ImageStore(store.root); // another process's view
    const rec = await storeImage(store, '2', ['held:1']);
    await store.hold('held:1', 'container-1');
    await expect(other.remove('held:1')).rejects.toMatchObject({ code: 'IN_USE' });
    expect((await other.remove('held:1', { force: true })).deleted).toEqual([rec.id]);
    expect(other.resolve('held:1')).toBeUndefined();
    // The create goes on with a whole image: its layer is there, its record too (hidden).
    expect(fs.existsSync(store.layerDir(rec.layers[0].diffId))).toBe(true);
    expect(store.record(rec.id)?.removed).toBeTruthy();
    store.unhold('container-1');
    await store.release(rec.id);
    expect(store.records()).toEqual([]);
    expect(fs.readdirSync(store.layersRoot)).toEqual([]);
    await expect(store.hold('held:1', 'container-2')).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('a hold whose owner died (a create killed with SIGKILL) holds nothing', async () => {
    const store = newStore();
    await storeImage(store, '3', ['stale:1']);
    const rec = await store.hold('stale:1', 'killed');
    const path = join(store.root, 'holds', 'killed');
    fs.writeFileSync(path, JSON.stringify({ manifestDigest: rec.manifestDigest, owner: deadOwner() }));
    expect((await store.remove('stale:1')).deleted).toEqual([rec.id]);
    expect(fs.existsSync(path)).toBe(false);
    expect(store.records()).toEqual([]);
  });
});

describe('leftovers are owned by PID and start time', () => {
  it('removes temp files and session marks of a dead owner whose PID is alive again, keeps live ones', async () => {
    const store = newStore();
    const rec = await storeImage(store, '4', []);
    // A session mark and a temp file named after this (live) PID with another start time: a
    // reused PID. Both are leftovers of a process that is gone.
    const [, start] = SELF_OWNER.split('.');
    const reused = `${process.pid}.${Number(start) + 1}`;
    fs.writeFileSync(join(store.root, 'locks', 'active', `${reused}-session-x`), '');
    fs.writeFileSync(join(store.tmpDir, `${reused}-blob-x`), 'partial');
    const mine = tempName(store.tmpDir, 'blob');
    fs.writeFileSync(mine, 'in progress');
    // The reused-PID mark does not hold off collection: the dangling image's layer goes.
    expect((await store.prune()).deletedImages).toEqual([rec.id]);
    expect(fs.readdirSync(store.layersRoot)).toEqual([]);
    const reopened = new ImageStore(store.root);
    expect(fs.readdirSync(reopened.tmpDir)).toEqual([mine.slice(store.tmpDir.length + 1)]);
    expect(fs.readdirSync(join(store.root, 'locks', 'active'))).toEqual([]);
  });

  it('leaves no per-layer lock file behind, and removes idle ones a killed unpack left', async () => {
    const store = newStore();
    const locks = join(store.root, 'locks');
    const layerLocks = () => fs.readdirSync(locks).filter((n) => n.startsWith('layer-'));
    await Promise.all([
      storeImage(store, '5', ['a:1']),
      storeImage(new ImageStore(store.root), '5', ['b:1']),
    ]);
    expect(layerLocks()).toEqual([]);
    expect(fs.readdirSync(store.layersRoot)).toHaveLength(1);
    // One left by a killed holder goes when a store opens; one a live process holds stays.
    fs.writeFileSync(join(locks, `layer-${'a'.repeat(64)}`), '', { mode: 0o600 });
    const release = await acquireLock(join(locks, `layer-${'b'.repeat(64)}`));
    new ImageStore(store.root);
    expect(layerLocks()).toEqual([`layer-${'b'.repeat(64)}`]);
    release({ unlink: true });
    expect(layerLocks()).toEqual([]);
  });

  it('a lock whose file its holder unlinks on release still lets one holder in at a time', async () => {
    const path = join(cleanup.tempDir('locks'), 'layer-x');
    let inside = 0;
    let most = 0;
    await Promise.all(
      Array.from({ length: 12 }, async () => {
        const release = await acquireLock(path);
        inside++;
        most = Math.max(most, inside);
        await new Promise((r) => setTimeout(r, 3));
        inside--;
        release({ unlink: true });
      }),
    );
    expect(most).toBe(1);
    expect(fs.existsSync(path)).toBe(false);
  });
});
