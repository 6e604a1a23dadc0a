import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { corralBin, imageArchive, removeTree, tempDir } from '@corral/testkit';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Sandbox } from './helpers.js';

// Docker's rules for images in use (issue 17): an image a running container uses is never
// removed, not even with -f; one only stopped containers use is removed with -f, and its
// layers stay until the last of them is removed.

const s = new Sandbox();
let archive = '';
let archiveDir = '';
afterAll(async () => {
  await s.teardown();
  if (archiveDir) removeTree(archiveDir);
});
// A failed test's containers must not hold the image for the next one.
afterEach(async () => {
  const ids = (await s.corral(['ps', '-aq'])).out.split('\n').filter(Boolean);
  if (ids.length) await s.corral(['rm', '-f', ...ids]);
});
beforeAll(() => {
  archiveDir = tempDir('in-use-image');
  archive = imageArchive(archiveDir, { tag: 'inuse:1', files: { '/hello': 'hi' } });
});

const store = (...parts: string[]) => readdirSync(join(s.root, 'image', ...parts));
const startAndWait = async (name: string) => {
  expect((await s.corral(['start', name])).status).toBe(0);
  expect((await s.corral(['wait', name])).out).toBe('0');
};
const load = async () => expect((await s.corral(['load', '-i', archive])).status).toBe(0);

describe('rmi of an image in use', () => {
  it('refuses -f while a container runs from the image (Conflict, exit 1), and exec still works', async () => {
    await load();
    const id = (await s.corral(['run', '-d', '--name', 'runner', 'inuse:1', 'sleep', '300'])).out;
    for (const ref of ['inuse:1', (await s.corral(['images', '-q', 'inuse:1'])).out || 'inuse:1']) {
      const r = await s.corral(['rmi', '-f', ref]);
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(
        new RegExp(
          `conflict: unable to delete [0-9a-f]{12} \\(cannot be forced\\) - image is being used by running container ${id.slice(0, 12)}`,
        ),
      );
    }
    expect((await s.corral(['exec', 'runner', 'cat', '/hello'])).out).toBe('hi');
    expect((await s.corral(['images'])).out).toMatch(/inuse\s+1/);
    // Paused counts as running.
    expect((await s.corral(['pause', 'runner'])).status).toBe(0);
    expect((await s.corral(['rmi', '-f', 'inuse:1'])).status).toBe(1);
    await s.corral(['unpause', 'runner']);
    await s.corral(['rm', '-f', 'runner']);
  }, 240_000);

  it('untags with -f when only a stopped container uses it; start works; rm takes the layers', async () => {
    await load();
    const id = (await s.corral(['create', '--name', 'stopped', 'inuse:1', 'cat', '/hello'])).out;
    const refused = await s.corral(['rmi', 'inuse:1']);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toContain(
      `conflict: unable to remove repository reference "inuse:1" (must force) - container ${id.slice(0, 12)} is using its referenced image`,
    );
    const forced = await s.corral(['rmi', '-f', 'inuse:1']);
    expect(forced.status).toBe(0);
    expect(forced.out).toContain('Untagged: inuse:1');
    expect((await s.corral(['images'])).out).not.toContain('inuse');
    // A run of the removed name finds nothing; the container still has its whole root.
    const gone = await s.corral(['run', '--rm', '--pull', 'never', 'inuse:1', 'true']);
    expect(gone.status).toBe(125);
    expect(gone.stderr).toContain("Unable to find image 'inuse:1' locally");
    expect(store('l')).toHaveLength(1);
    await startAndWait('stopped');
    expect((await s.corral(['logs', 'stopped'])).out).toBe('hi');
    expect((await s.corral(['diff', 'stopped'])).status).toBe(0);
    // image prune (even -a) keeps what the container uses.
    expect((await s.corral(['image', 'prune', '-a', '-f'])).status).toBe(0);
    expect(store('l')).toHaveLength(1);
    await startAndWait('stopped');
    expect((await s.corral(['logs', 'stopped'])).out).toBe('hihi');
    const committed = await s.corral(['commit', 'stopped', 'from-removed:1']);
    expect(committed.status).toBe(0);
    expect((await s.corral(['rmi', 'from-removed:1'])).status).toBe(0);

    expect((await s.corral(['rm', 'stopped'])).status).toBe(0);
    expect(store('l')).toEqual([]);
    expect(store('layers')).toEqual([]);
    expect(store('images')).toEqual([]);
    expect(store('blobs', 'sha256')).toEqual([]);
  }, 240_000);

  it('image prune -a never removes an image a container uses; prune -f, --filter until and --help work', async () => {
    await load();
    await s.corral(['create', '--name', 'keeper', 'inuse:1', 'true']);
    expect((await s.corral(['image', 'prune', '--help'])).out).toContain('Usage:  corral image prune');
    // Created 2026-01-01: not before 2025, so an until filter of that time keeps it.
    expect((await s.corral(['image', 'prune', '-a', '--filter', 'until=2025-01-01T00:00:00Z'])).status).toBe(
      0,
    );
    const bad = await s.corral(['image', 'prune', '--filter', 'until=yesterday-ish']);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain('invalid until filter');
    expect((await s.corral(['image', 'prune', '-af'])).status).toBe(0);
    expect((await s.corral(['images'])).out).toMatch(/inuse\s+1/);
    await s.corral(['rm', 'keeper']);
    const pruned = await s.corral(['image', 'prune', '-a', '-f', '--filter', 'until=1h']);
    expect(pruned.out).toContain('deleted: sha256:');
    expect(store('l')).toEqual([]);
  }, 240_000);
});

/** Starts a CLI command without waiting for it. */
function start(args: string[]): Promise<{ status: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [corralBin, '--root', s.root, ...args], {
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

const ROUNDS = 6;

describe('run racing rmi -f', () => {
  it('either runs on the whole image or fails with NotFound; never a raw error, nothing left', async () => {
    const outcomes = { ran: 0, notFound: 0 };
    for (let i = 0; i < ROUNDS; i++) {
      await load();
      const [run, rmi] = await Promise.all([
        start(['run', '--rm', '--pull', 'never', 'inuse:1', 'cat', '/hello']),
        start(['rmi', '-f', 'inuse:1']),
      ]);
      expect(rmi.err).not.toMatch(/ImageError| {4}at /);
      expect(run.err).not.toMatch(/ImageError| {4}at /);
      if (run.status === 0) {
        expect(run.out).toBe('hi');
        outcomes.ran++;
      } else {
        expect(run.status).toBe(125);
        expect(run.err).toContain("Unable to find image 'inuse:1' locally");
        outcomes.notFound++;
      }
      // rmi -f succeeds, or is refused while the run's container runs (its image then stays).
      if (rmi.status !== 0) expect(rmi.err).toContain('cannot be forced');
      await s.corral(['rmi', '-f', 'inuse:1']);
      expect((await s.corral(['ps', '-aq'])).out).toBe('');
      expect(store('l')).toEqual([]);
      expect(store('images')).toEqual([]);
    }
    expect(outcomes.ran + outcomes.notFound).toBe(ROUNDS);
  }, 400_000);
});
