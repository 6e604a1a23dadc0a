// Progress of long work that moves bytes: `corral commit` of a big container and `corral load`
// of a big archive draw a progress line on a terminal (util-linux `script` gives the CLI one)
// and print nothing but their result in a pipe.
import { spawn } from 'node:child_process';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Sandbox } from './helpers.js';

const s = new Sandbox();
afterAll(() => s.teardown());
const bin = fileURLToPath(new URL('../bin/corral.cjs', import.meta.url));

/** Runs the CLI on a terminal of its own; what it wrote there, stdout and stderr together. */
function onTerminal(args: string[]): Promise<{ status: number | null; out: string }> {
  const cmd = [process.execPath, bin, '--root', s.root, ...args]
    .map((a) => `'${a.replace(/'/g, `'\\''`)}'`)
    .join(' ');
  return new Promise((resolve) => {
    const child = spawn('script', ['-qec', cmd, '/dev/null'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('close', (status) => resolve({ status, out }));
  });
}

describe('progress on a terminal, none in a pipe', () => {
  const archive = () => join(s.root, 'big.tar');
  beforeAll(async () => {
    // 24 MiB that gzip cannot shrink: the layer takes a while to write.
    const made = await s.corral([
      'run',
      '--name',
      'big',
      'busybox',
      'sh',
      '-c',
      'dd if=/dev/urandom of=/big bs=1M count=24 2>/dev/null',
    ]);
    expect(made.status).toBe(0);
  });

  it('commit: the layer bytes so far on a terminal; only the id in a pipe', async () => {
    const t = await onTerminal(['commit', 'big', 'big:tty']);
    expect(t.status).toBe(0);
    expect(t.out).toMatch(/\r\x1b\[2KCommitting [\d.]+[kMG]?B/);
    expect(t.out).toMatch(/sha256:[0-9a-f]{64}/);
    const p = await s.corral(['commit', 'big', 'big:pipe']);
    expect(p.status).toBe(0);
    expect(p.stderr).toBe('');
    expect(p.out.trim()).toMatch(/^sha256:[0-9a-f]{64}$/);
  });

  it('load: a bar of the archive read against its size on a terminal; only the result in a pipe', async () => {
    expect((await s.corral(['save', '-o', archive(), 'big:pipe'])).status).toBe(0);
    const size = statSync(archive()).size;
    expect((await s.corral(['rmi', 'big:tty', 'big:pipe'])).status).toBe(0);
    const t = await onTerminal(['load', '-i', archive()]);
    expect(t.status).toBe(0);
    // The last bar is full: every byte of the archive was counted.
    const bars = [...t.out.matchAll(/Loading \[[=> ]+\] ([\d.]+[kMG]?B)\/([\d.]+[kMG]?B)/g)];
    expect(bars.length).toBeGreaterThan(0);
    const last = bars[bars.length - 1];
    expect(last[1]).toBe(last[2]);
    expect(last[2]).toMatch(new RegExp(`^${(size / 1e6).toFixed(1).replace('.', '\\.')}MB$`));
    expect(t.out).toContain('Loaded image: big:pipe');
    expect((await s.corral(['rmi', 'big:pipe'])).status).toBe(0);
    const p = await s.corral(['load', '-i', archive()]);
    expect([p.status, p.stderr, p.out]).toEqual([0, '', 'Loaded image: big:pipe']);
  });
});
