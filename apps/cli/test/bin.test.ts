// The `corral` command as a shell runs it: the bin file itself, by its #! line, not `node -- bin`.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { corralBin, removeTree, tempDir } from '@corral/testkit';
import { afterAll, describe, expect, it } from 'vitest';

const root = tempDir('corral-bin');
afterAll(() => removeTree(root));

describe('the corral bin run by its #! line', () => {
  it('leaves --env-file to corral (Node 20 would read it from anywhere in its argv and exit 9)', () => {
    const r = spawnSync(
      corralBin,
      ['--root', root, 'create', '--env-file', '/nonexistent/corral.env', 'busybox'],
      {
        encoding: 'utf8',
      },
    );
    expect(r.stderr).not.toContain('node:');
    expect([r.status, r.stderr]).toEqual([
      125,
      expect.stringContaining('--env-file /nonexistent/corral.env'),
    ]);
  });
});

describe('the usage', () => {
  const main = fileURLToPath(new URL('../dist/main.js', import.meta.url));
  const usageFile = fileURLToPath(new URL('../dist/bundle/usage.txt', import.meta.url));
  const run = (file: string, args: string[]) =>
    spawnSync(process.execPath, ['--', file, ...args], { encoding: 'utf8' });

  it("is what the CLI itself prints, also when the bin answers from the build's usage.txt", () => {
    const own = run(main, ['--help']);
    expect(own.status).toBe(0);
    expect(own.stdout).toContain('Commands:');
    if (existsSync(usageFile)) expect(run(corralBin, ['--help']).stdout).toBe(own.stdout);
    for (const [args, code] of [
      [['--help'], 0],
      [['help'], 0],
      [['--root', root, '--help'], 0],
      [[`--root=${root}`, 'help'], 0],
      [[], 1],
      [['--root', root], 1],
    ] as const) {
      const r = run(corralBin, [...args]);
      expect([r.status, r.stdout, r.stderr]).toEqual([code, own.stdout, '']);
    }
    // A command's own help is the CLI's, not the usage.
    expect(run(corralBin, ['ps', '--help']).stdout).toContain('Usage:  corral ps');
  });
});
