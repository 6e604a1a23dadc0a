import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

const dist = new URL('../dist/index.js', import.meta.url).href;

// In a process of its own: 32 MiB of 64 KiB buffers (malloc's, below its mmap threshold) are
// freed while one allocated after them stays, so free() cannot give them back itself (only a
// free top of the heap goes back). malloc_trim releases the free pages in the middle.
const child = `
import { readFileSync } from 'node:fs';
import { mallocTrim } from ${JSON.stringify(dist)};
const dirty = () => Number(/^Private_Dirty:\\s+(\\d+) kB/m.exec(readFileSync('/proc/self/smaps_rollup', 'utf8'))[1]);
let bufs = Array.from({ length: 512 }, () => Buffer.allocUnsafeSlow(65536).fill(1));
const keep = Buffer.allocUnsafeSlow(65536).fill(2);
bufs = null;
gc();
gc();
const before = dirty();
const released = mallocTrim();
const after = dirty();
console.log(JSON.stringify({ before, after, released, keep: keep[0] }));
`;

describe('mallocTrim', () => {
  it('gives the free pages inside malloc heaps back to the system', () => {
    const r = spawnSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', child], {
      encoding: 'utf8',
    });
    expect(r.stderr).toBe('');
    const m = JSON.parse(r.stdout) as { before: number; after: number; released: boolean; keep: number };
    expect(m.released).toBe(true);
    expect(m.keep).toBe(2);
    // Most of the 32 MiB freed: gone from the process's private memory.
    expect(m.before - m.after).toBeGreaterThan(24 * 1024);
  });
});
