import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { unmountUnderSync } from './mounts.js';

/** A fresh folder `corral-NAME-XXXXXX` under os.tmpdir(), with the named sub-folders made. */
export function tempDir(name: string, ...subdirs: string[]): string {
  const dir = mkdtempSync(join(tmpdir(), `corral-${name}-`));
  for (const d of subdirs) mkdirSync(join(dir, d), { recursive: true });
  return dir;
}

/**
 * Takes off whatever is still mounted under `dir` (deepest first), then removes it. A folder
 * that gains an entry meanwhile (the keeper of a just removed `--rm` container appending its
 * `destroy` event to the root's events.jsonl) is emptied and removed again, for up to 5 s,
 * rather than failing the test's teardown with ENOTEMPTY. rmSync's own retries cannot do this:
 * they retry the folder's rmdir without emptying it again.
 */
export function removeTree(dir: string): void {
  unmountUnderSync(dir);
  for (let attempt = 1; ; attempt++) {
    try {
      rmSync(dir, { recursive: true, force: true });
      return;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if ((code !== 'ENOTEMPTY' && code !== 'EBUSY') || attempt === 50) throw e;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
    }
  }
}

/**
 * What a test made, undone in reverse order at `run()` (an afterEach or afterAll hook), also
 * when the test failed. Every step runs even when an earlier one throws; the first error is
 * thrown at the end.
 */
export class Cleanups {
  private readonly steps: (() => unknown)[] = [];

  /** Runs `fn` at cleanup, before everything added earlier. */
  add(fn: () => unknown): void {
    this.steps.push(fn);
  }

  /** A temp folder (see tempDir), unmounted and removed at cleanup. */
  tempDir(name: string, ...subdirs: string[]): string {
    const dir = tempDir(name, ...subdirs);
    this.add(() => removeTree(dir));
    return dir;
  }

  /** How many steps wait. */
  get size(): number {
    return this.steps.length;
  }

  async run(): Promise<void> {
    let first: { error: unknown } | undefined;
    for (let fn = this.steps.pop(); fn; fn = this.steps.pop()) {
      try {
        await fn();
      } catch (e) {
        first ??= { error: e };
      }
    }
    if (first) throw first.error;
  }
}
