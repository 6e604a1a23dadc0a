// The `corral` command as a shell runs it: the bin file itself, by its #! line, not `node -- bin`.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
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

describe('the corral bin run by sh, as the shims of package managers run it (pnpm: exec /bin/sh BIN)', () => {
  it('runs the command, starting Node without NODE_EXTRA_CA_CERTS (a missing file draws no warning)', () => {
    const r = spawnSync('/bin/sh', [corralBin, '--root', root, 'ps', '--format', '{{.ID}}'], {
      encoding: 'utf8',
      env: { ...process.env, NODE_EXTRA_CA_CERTS: join(root, 'no-such-ca.pem') },
    });
    expect([r.status, r.stdout, r.stderr]).toEqual([0, '', '']);
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

describe('a command with a bundle of its own (ps, images, version)', () => {
  const main = fileURLToPath(new URL('../dist/main.js', import.meta.url));
  const bundleDir = fileURLToPath(new URL('../dist/bundle/', import.meta.url));
  // Which bundles a run loaded: the files in require's cache when it exits.
  const preload = join(root, 'loaded.cjs');
  writeFileSync(
    preload,
    "process.on('exit', () => require('node:fs').writeFileSync(process.env.CORRAL_TEST_LOADED, Object.keys(require.cache).join('\\n')));\n",
  );
  const loaded = join(root, 'loaded.txt');
  const run = (file: string, args: string[]) =>
    spawnSync(process.execPath, ['-r', preload, '--', file, ...args], {
      encoding: 'utf8',
      env: { ...process.env, CORRAL_TEST_LOADED: loaded },
    });

  it('prints, fails and exits as the whole CLI does, after any global flags', () => {
    const sock = `unix://${join(root, 'no-corrald.sock')}`;
    const cases: [string, string[]][] = [
      ['ps', ['--root', root, 'ps']],
      ['ps', [`--root=${root}`, '--iptables=false', 'ps', '-a', '--format', '{{.ID}} {{.Names}}']],
      ['ps', ['--root', root, 'ps', '--no-such-flag']],
      ['ps', ['--root', root, 'ps', '--help']],
      ['ps', ['-H', sock, 'ps']],
      ['images', ['--root', root, 'images']],
      ['images', ['--root', root, 'images', '--format', 'json', 'extra']],
      ['version', ['--root', root, 'version', '--format', 'json']],
      ['version', ['--version']],
    ];
    for (const [name, args] of cases) {
      const whole = run(main, args);
      const quick = run(corralBin, args);
      expect([quick.status, quick.stdout, quick.stderr], args.join(' ')).toEqual([
        whole.status,
        whole.stdout,
        whole.stderr,
      ]);
      if (existsSync(join(bundleDir, `${name}.cjs`)))
        expect(readFileSync(loaded, 'utf8').split('\n'), args.join(' ')).toContain(
          join(bundleDir, `${name}.cjs`),
        );
    }
  });

  it('other commands load the whole CLI', () => {
    const r = run(corralBin, ['--root', root, 'ps-not']);
    expect(r.status).toBe(1);
    if (existsSync(join(bundleDir, 'corral.cjs')))
      expect(readFileSync(loaded, 'utf8').split('\n')).toContain(join(bundleDir, 'corral.cjs'));
  });
});
