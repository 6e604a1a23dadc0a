import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A fresh temp root for one test, with named sub-folders made. */
export function tempRoot(...dirs: string[]): string {
  const root = mkdtempSync(join(tmpdir(), 'corral-unionfs-'));
  for (const d of dirs) mkdirSync(join(root, d), { recursive: true });
  return root;
}
