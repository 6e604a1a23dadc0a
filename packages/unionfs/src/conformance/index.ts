import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { MS, mount, umount2 } from '@corral/sys';
import { removeTree, tempDir } from '@corral/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import type { UnionFs } from '../../src/index.js';
import { CASES, type Case } from './cases.js';
import { buildLayer, fixTimes } from './layers.js';
import { type Snapshot, snapshot } from './tree.js';

/**
 * The reference: the kernel's overlayfs mounted directly with mount(2), with the options
 * that define corral's union semantics (no index, no redirects, full copy-up). Every backend
 * must produce the same merged view and the same upper layer.
 */
export const REFERENCE_OPTIONS = 'index=off,redirect_dir=off,metacopy=off';

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

interface Outcome {
  result: unknown;
  error: string | null;
  merged: Snapshot;
  upper: Snapshot | null;
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
  let result: unknown = null;
  let error: string | null = null;
  try {
    result = await c.run(target);
  } catch (e) {
    error = (e as NodeJS.ErrnoException).code ?? String(e);
  }
  const merged = snapshot(target);
  await unmount();
  return { result, error, merged, upper: upper ? snapshot(upper, true) : null };
}

/**
 * The conformance suite of the UnionFs interface. Each case builds lower layers once, runs
 * the same operations on the reference and on `factory()`'s mount, and compares what the
 * operations saw, the merged tree and the upper layer left behind.
 */
export function runConformance(backendName: string, factory: () => UnionFs, cases: Case[] = CASES): void {
  describe(`UnionFs conformance: ${backendName}`, () => {
    let root = '';
    afterEach(() => {
      if (root) removeTree(root);
      root = '';
    });

    for (const c of cases) {
      it(c.name, async () => {
        root = tempDir('unionfs-conf');
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
  });
}

export { CASES, type Case } from './cases.js';
