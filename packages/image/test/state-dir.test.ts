import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { Cleanups } from '@corral/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import { ImageStore, importRootfs, loadArchive, saveArchive } from '../src/index.js';
import { makeTar } from './helpers.js';

// A local user (uid 65534, through util-linux's setpriv) attacks an image store whose parent
// folder is 0755, as /var/lib is. Each attack runs for real and must fail.

// setpriv still holds root's capabilities when it execs the program (they go at the
// execve), so the path is walked through sh, which starts as plain uid 65534.
const NOBODY = ['--reuid=65534', '--regid=65534', '--clear-groups', '--', '/bin/sh', '-c', 'exec "$@"', 'sh'];
/** The canary: a copy of coreutils' id made setuid root (busybox drops a setuid bit itself). */
const ID = '/usr/bin/id';
const SECRET = 'canary-secret-7f3a9c';

const cleanup = new Cleanups();
afterEach(() => cleanup.run());

function asNobody(argv: string[]): { status: number | null; out: string; err: string } {
  const r = spawnSync('setpriv', [...NOBODY, ...argv], { encoding: 'utf8', timeout: 10_000 });
  return { status: r.status, out: r.stdout.trim(), err: r.stderr.trim() };
}

/** A temp folder as open as /var/lib (0755), with the store root inside it. */
function openParent(): string {
  const tmp = cleanup.tempDir('image');
  fs.chmodSync(tmp, 0o755);
  return tmp;
}

async function storeWithSecrets(root: string): Promise<ImageStore> {
  const store = new ImageStore(root);
  const layer = await makeTar([
    { name: 'bin/', type: 'directory' },
    { name: 'bin/id', body: fs.readFileSync(ID), mode: 0o4755, uid: 0, gid: 0 },
    { name: 'secret', body: SECRET, mode: 0o644 },
  ]);
  await importRootfs(store, Readable.from([layer]), { names: ['private:1'] });
  return store;
}

/** Every state folder of an image store (not the layers' own content). */
function stateDirs(root: string): string[] {
  return ['', 'blobs', 'blobs/sha256', 'tmp', 'l', 'layers', 'images', 'locks', 'locks/active'].map((d) =>
    join(root, d),
  );
}

const modeOf = (p: string) => fs.statSync(p).mode & 0o7777;

describe('an unprivileged local user cannot use the image store', () => {
  it('cannot run a setuid-root binary from an unpacked layer (CVE-2021-41091 class)', async () => {
    const store = await storeWithSecrets(join(openParent(), 'image'));
    const id = join(store.layerDirs('private:1')[0], 'bin', 'id');
    // The canary is armed: setuid root, so running it at all would print 0.
    const st = fs.statSync(id);
    expect([st.uid, st.mode & 0o4000]).toEqual([0, 0o4000]);
    const r = asNobody([id, '-u']);
    expect(r.out).not.toBe('0');
    expect(r.status).not.toBe(0);
    expect(r.err).toMatch(/Permission denied/);
  });

  it('cannot read image blobs or unpacked layer files', async () => {
    const store = await storeWithSecrets(join(openParent(), 'image'));
    const record = store.get('private:1');
    const paths = [
      store.content.blobPath(record.layers[0].digest),
      store.content.blobPath(record.configDigest),
      join(store.layerDirs('private:1')[0], 'secret'),
    ];
    for (const p of paths) {
      const r = asNobody(['cat', p]);
      expect(r.status, p).not.toBe(0);
      expect(r.err).toMatch(/Permission denied/);
    }
    const list = asNobody(['ls', join(store.root, 'blobs', 'sha256')]);
    expect(list.status).not.toBe(0);
  });

  it('cannot hold a store lock with a read-only fd so that loads hang', async () => {
    const parent = openParent();
    const store = await storeWithSecrets(join(parent, 'image'));
    const archive = join(parent, 'private.tar');
    await saveArchive(store, ['private:1'], fs.createWriteStream(archive));
    await store.remove('private:1');
    // The GC lock every load and pull takes: opened read-only (all a reader needs) and flocked.
    const lock = join(store.root, 'locks', 'gc');
    expect(fs.existsSync(lock)).toBe(true);
    const hold = 'exec 9<"$1" && flock -x 9 && echo held && exec sleep 60';
    const attacker: ChildProcess = spawn('setpriv', [...NOBODY, 'sh', '-c', hold, 'sh', lock], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    // One process all along (each step execs the next): killing it drops the lock.
    cleanup.add(() => {
      if (attacker.exitCode === null && attacker.signalCode === null) attacker.kill('SIGKILL');
    });
    let out = '';
    attacker.stdout!.on('data', (d) => (out += d));
    const ended = new Promise<number | null>((r) => attacker.on('exit', (code) => r(code)));
    // Wait until the attacker either holds the lock or has given up.
    const outcome = await Promise.race([
      ended.then(() => 'exited'),
      (async () => {
        while (!out.includes('held')) await sleep(10);
        return 'held';
      })(),
    ]);
    expect(outcome).toBe('exited');
    expect(await ended).not.toBe(0);
    // And a load goes through (a hang here would mean the lock was held).
    const loaded = await Promise.race([
      loadArchive(store, archive),
      sleep(20_000).then(() => {
        throw new Error('the load hung on a lock held by another user');
      }),
    ]);
    expect(loaded.images[0].names).toEqual(['private:1']);
  });
});

describe('a store made by an older corral', () => {
  it('gets private modes when opened: folders 0700, lock files 0600', async () => {
    const parent = openParent();
    const root = join(parent, 'image');
    const old = await storeWithSecrets(root);
    await old.tag('private:1', 'private:2');
    // What older versions made: 0755 folders, 0644 lock and session files.
    for (const d of stateDirs(root)) fs.chmodSync(d, 0o755);
    const locks = fs.readdirSync(join(root, 'locks')).filter((n) => n !== 'active');
    expect(locks.length).toBeGreaterThan(0);
    for (const n of locks) fs.chmodSync(join(root, 'locks', n), 0o644);
    for (const b of old.content.listBlobs()) fs.chmodSync(old.content.blobPath(b), 0o644);
    expect(asNobody(['cat', old.content.blobPath(old.get('private:1').configDigest)]).status).toBe(0);

    const store = new ImageStore(root);
    for (const d of stateDirs(root)) expect([d, modeOf(d)]).toEqual([d, 0o700]);
    for (const n of locks) expect(modeOf(join(root, 'locks', n))).toBe(0o600);
    // The layers' own folders keep the modes their image gave them.
    expect(modeOf(join(store.layerDirs('private:1')[0], 'bin'))).toBe(0o755);
    expect(asNobody(['cat', store.content.blobPath(store.get('private:1').configDigest)]).status).not.toBe(0);
    expect(store.check()).toEqual([]);
  });

  it('refuses a state folder that another user owns', async () => {
    const root = join(openParent(), 'image');
    fs.mkdirSync(root, { mode: 0o755 });
    fs.chownSync(root, 65534, 65534);
    expect(() => new ImageStore(root)).toThrow(/belongs to uid 65534/);
  });
});
