import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

const trimModule = new URL('../dist/keeper-trim.js', import.meta.url).href;

// A keeper's part in its own process (--expose-gc, as keepers run): 32 MiB of output chunks
// read and let go, as the log writer does, while one buffer made after them stays. Their
// memory is measured at once (nothing has collected them: an idle process would keep them),
// then after the quiet second that trimAfterOutput waits.
const child = `
import { readFileSync } from 'node:fs';
import { PassThrough } from 'node:stream';
import { trimAfterOutput } from ${JSON.stringify(trimModule)};
const dirty = () => Number(/^Private_Dirty:\\s+(\\d+) kB/m.exec(readFileSync('/proc/self/smaps_rollup', 'utf8'))[1]);
const output = new PassThrough();
let seen = 0;
output.on('data', (chunk) => { seen += chunk.length; });
trimAfterOutput([output]);
for (let i = 0; i < 512; i++) output.write(Buffer.allocUnsafeSlow(65536).fill(1));
const keep = Buffer.allocUnsafeSlow(65536).fill(2);
const before = dirty();
setTimeout(() => console.log(JSON.stringify({ seen, before, after: dirty(), keep: keep[0] })), 3000);
`;

describe('trimAfterOutput', () => {
  it('gives back the memory of a burst of output once it is quiet', () => {
    const r = spawnSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', child], {
      encoding: 'utf8',
    });
    expect(r.stderr).toBe('');
    const m = JSON.parse(r.stdout) as { seen: number; before: number; after: number; keep: number };
    expect(m.seen).toBe(512 * 65536);
    expect(m.keep).toBe(2);
    expect(m.before - m.after).toBeGreaterThan(16 * 1024);
  });
});
