// The conformance suite of the UnionFs interface, shipped with the package so that a backend
// living elsewhere runs it too (import { runConformance } from '@corral/unionfs/conformance',
// in a vitest test, as root). Each case builds its lower layers once, runs the same
// operations (in a child process) on the reference, the kernel's overlayfs mounted by hand,
// and on the backend's mount, and compares what the operations saw, the merged tree and the
// upper layer left behind. Then come the lifecycle tests: unmount while busy, and, for
// backends served by a process, that process's death.
import { spawn } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isMountPoint, MNT, MS, mount, readMountInfo, umount2 } from '@corral/sys';
import { afterEach, describe, expect, it } from 'vitest';
import { cleanupStale } from '../cleanup.js';
import { UnionFsError } from '../errors.js';
import type { UnionFs } from '../types.js';
import type { Case } from './cases.js';
import { CASES } from './cases-more.js';
import { buildLayer, fixTimes } from './layers.js';
import { type Snapshot, snapshot } from './tree.js';

/**
 * The reference: the kernel's overlayfs mounted directly with mount(2), with the options
 * that define corral's union semantics (no index, no redirects, full copy-up). Every backend
 * must produce the same merged view and the same upper layer.
 */
export const REFERENCE_OPTIONS = 'index=off,redirect_dir=off,metacopy=off';

/** The compiled case runner (a test running this file from src/ uses the built one). */
const CHILD = fileURLToPath(new URL('./child.js', import.meta.url)).replace(
  /\/src\/conformance\/child\.js$/,
  '/dist/conformance/child.js',
);

function mountReference(lower: string[], upper: string | null, work: string | null, target: string): void {
  const dirs = upper && work ? `,upperdir=${upper},workdir=${work}` : '';
  mount(
    'overlay',
    target,
    'overlay',
    upper ? 0 : MS.RDONLY,
    `lowerdir=${lower.join(':')}${dirs},${REFERENCE_OPTIONS}`,
  );
}

/** Takes off every mount under `root` (deepest first, detached) and removes the folder. */
export function teardown(root: string): void {
  const under = readMountInfo()
    .map((m) => m.mountPoint)
    .filter((p) => p === root || p.startsWith(`${root}/`))
    .sort((a, b) => b.length - a.length);
  for (const p of under) {
    try {
      umount2(p, MNT.DETACH);
    } catch {
      // already gone
    }
  }
  rmSync(root, { recursive: true, force: true });
}

interface Outcome {
  result: unknown;
  error: string | null;
  merged: Snapshot;
  upper: Snapshot | null;
}

/** Runs case `c`'s operations on `target` in a child process (as `c.as` when given). */
function runChild(c: Case, target: string): Promise<{ result: unknown; error: string | null }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD, c.name, target], {
      stdio: ['ignore', 'pipe', 'inherit'],
      ...(c.as ? { uid: c.as.uid, gid: c.as.gid } : {}),
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.on('error', reject);
    child.on('exit', (code) => {
      try {
        resolve(JSON.parse(out));
      } catch {
        reject(new Error(`the case runner ended with ${code} and printed ${JSON.stringify(out)}`));
      }
    });
  });
}

async function runSide(
  c: Case,
  root: string,
  side: string,
  mountIt: (upper: string | null, work: string | null, target: string) => Promise<() => Promise<void>>,
): Promise<Outcome> {
  const base = join(root, side);
  const target = join(base, 'merged');
  mkdirSync(target, { recursive: true });
  let upper: string | null = null;
  let work: string | null = null;
  if (!c.readonly) {
    upper = join(base, 'upper');
    work = join(base, 'work');
    mkdirSync(work);
    if (c.upper) buildLayer(upper, c.upper);
    else {
      mkdirSync(upper);
      fixTimes(upper);
    }
  }
  const unmount = await mountIt(upper, work, target);
  let ran: { result: unknown; error: string | null };
  let merged: Snapshot;
  try {
    ran = await runChild(c, target);
    merged = snapshot(target);
  } finally {
    await unmount();
  }
  return { ...ran, merged, upper: upper ? snapshot(upper, true) : null };
}

/** A temp folder others may walk into (cases can run as another user). */
function tempRoot(): string {
  const root = mkdtempSync(join(tmpdir(), 'corral-unionfs-conf-'));
  chmodSync(root, 0o755);
  return root;
}

/**
 * Runs the conformance suite for the backend `factory()` makes. `cases` picks some of CASES
 * (by default all of them).
 */
export function runConformance(
  backendName: string,
  factory: () => UnionFs,
  cases: readonly Case[] = CASES,
): void {
  describe(`UnionFs conformance: ${backendName}`, () => {
    let root = '';
    afterEach(() => {
      if (root) teardown(root);
      root = '';
    });

    for (const c of cases) {
      it(c.name, async () => {
        root = tempRoot();
        const lowers = c.lower.map((spec, i) => {
          const dir = join(root, `lower${i}`);
          buildLayer(dir, spec);
          return dir;
        });
        const reference = await runSide(c, root, 'reference', async (upper, work, target) => {
          mountReference(lowers, upper, work, target);
          return async () => umount2(target);
        });
        const fs = factory();
        const backend = await runSide(c, root, 'backend', async (upper, work, target) => {
          const m = await fs.mount({
            lower: lowers,
            ...(upper && work ? { upper, work } : {}),
            target,
          });
          return () => m.unmount();
        });
        expect(backend.error, 'operations ended the same way').toEqual(reference.error);
        expect(backend.result, 'operations saw the same').toEqual(reference.result);
        expect(backend.merged, 'merged view').toEqual(reference.merged);
        expect(backend.upper, 'upper layer').toEqual(reference.upper);
        // The lowers are never written.
        expect(lowers.map((l) => snapshot(l, true))).toEqual(
          c.lower.map((spec, i) => {
            const fresh = join(root, `fresh${i}`);
            buildLayer(fresh, spec);
            return snapshot(fresh, true);
          }),
        );
      });
    }

    /** Layers for the lifecycle tests, and a mount of them. */
    const mountOne = async () => {
      root = tempRoot();
      for (const d of ['lower', 'upper', 'work', 'merged']) mkdirSync(join(root, d));
      buildLayer(join(root, 'lower'), { f: 'lower file', d: { g: 'g' } });
      const target = join(root, 'merged');
      const m = await factory().mount({
        lower: [join(root, 'lower')],
        upper: join(root, 'upper'),
        work: join(root, 'work'),
        target,
      });
      return { m, target };
    };

    it('unmount while busy: refused, then a detached unmount waits for the last file', async () => {
      const { m, target } = await mountOne();
      const fd = openSync(join(target, 'f'), 'r');
      const busy = await m.unmount().catch((e: unknown) => e);
      expect(busy).toBeInstanceOf(UnionFsError);
      expect((busy as UnionFsError).code).toBe('MOUNTPOINT_BUSY');
      expect(isMountPoint(target)).toBe(true);
      await m.unmount({ detach: true });
      expect(isMountPoint(target)).toBe(false);
      // The open file still reads through the detached mount, whose server still answers.
      expect(readFileSync(fd, 'utf8')).toBe('lower file');
      closeSync(fd);
      const exit = await m.closed;
      if (m.pid !== null) expect(exit.code).toBe(0);
    });

    it("the server's death: the mount answers ENOTCONN, and cleanupStale takes it off", async (ctx) => {
      const { m, target } = await mountOne();
      if (m.pid === null) {
        await m.unmount();
        ctx.skip();
      }
      process.kill(m.pid as number, 'SIGKILL');
      const exit = await m.closed;
      expect(exit.signal).toBe('SIGKILL');
      let code = '';
      try {
        statSync(join(target, 'f'));
      } catch (e) {
        code = (e as NodeJS.ErrnoException).code ?? '';
      }
      expect(code).toBe('ENOTCONN');
      expect(cleanupStale(target)).toEqual({ unmounted: 1 });
      expect(isMountPoint(target)).toBe(false);
    });
  });
}

export type { Case } from './cases.js';
export { CASES } from './cases-more.js';
export { buildLayer, type Entry, fixTimes, type Spec } from './layers.js';
export { type EntryRecord, type Snapshot, snapshot } from './tree.js';
