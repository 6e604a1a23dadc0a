// The `corral` command as a shell runs it: the bin file itself, by its #! line, not `node -- bin`.
import { spawnSync } from 'node:child_process';
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
