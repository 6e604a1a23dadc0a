// The container commands with --host run from a bundle of their own (src/entries/host.ts): it
// must print, fail and exit as the whole CLI does (dist/main.js), and load no engine code. The
// bin is run as users run it (through the `corral` shim, by its #! line); which bundles a run
// loaded is read from require's cache at its exit (a --require preload given in NODE_OPTIONS).
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Cleanups, corralBin, exec, type Result } from '@corral/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Daemon, startDaemon } from '../../daemon/test/daemon.js';

const c = new Cleanups();
let d: Daemon;
let host: string;
const dir = c.tempDir('host-entry');
const main = fileURLToPath(new URL('../dist/main.js', import.meta.url));
const bundleDir = fileURLToPath(new URL('../dist/bundle/', import.meta.url));
const bundled = existsSync(join(bundleDir, 'host.cjs'));
const preload = join(dir, 'loaded.cjs');
writeFileSync(
  preload,
  "process.on('exit', () => require('node:fs').writeFileSync(process.env.CORRAL_TEST_LOADED, Object.keys(require.cache).join('\\n')));\n",
);
let n = 0;

beforeAll(async () => {
  d = await startDaemon(c);
  host = `unix://${d.socket}`;
});
afterAll(() => c.run());

/** One run of `file` (the bin or the whole CLI): what it printed and which bundles it loaded. */
async function run(
  file: string,
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ seen: [number | null, string, string]; loaded: string[] }> {
  const loaded = join(dir, `loaded-${n++}.txt`);
  const r: Result = await exec(process.execPath, ['--', file, ...args], {
    env: {
      ...process.env,
      CORRAL_HOST: '',
      ...env,
      NODE_OPTIONS: `--require ${preload}`,
      CORRAL_TEST_LOADED: loaded,
    },
  });
  const files = existsSync(loaded) ? readFileSync(loaded, 'utf8').split('\n') : [];
  return {
    seen: [r.status, r.stdout, r.stderr],
    loaded: files.filter((f) => f.startsWith(bundleDir)).map((f) => f.slice(bundleDir.length)),
  };
}

/** The bin and the whole CLI print and exit alike; the bin's bundles are returned. */
async function same(args: string[], env: NodeJS.ProcessEnv = {}): Promise<string[]> {
  const whole = await run(main, args, env);
  const quick = await run(corralBin, args, env);
  expect(quick.seen, args.join(' ')).toEqual(whole.seen);
  return quick.loaded;
}

const onlyHost = (loaded: string[]) => {
  if (!bundled) return;
  expect(loaded).toContain('host.cjs');
  // Neither the CLI's nor the engine's bundle, nor the remote client's own (it is in host's).
  for (const other of ['corral.cjs', 'engine.cjs', 'remote.cjs', 'early.cjs'])
    expect(loaded).not.toContain(other);
};

describe('corral --host: the container commands from their own bundle', () => {
  it("passes a run's exit code on, stdout and stderr apart, as the whole CLI", async () => {
    const args = ['--host', host, 'run', '--rm', 'busybox', 'sh', '-c', 'echo out; echo err >&2; exit 3'];
    const loaded = await same(args);
    onlyHost(loaded);
    expect((await run(corralBin, args)).seen).toEqual([3, 'out\n', 'err\n']);
  });

  it('reads -H, --host=, and CORRAL_HOST (not with a --root: that is the local engine)', async () => {
    onlyHost(await same(['-H', host, 'run', '--rm', 'busybox', 'echo', 'hi']));
    onlyHost(await same([`--host=${host}`, 'run', '--rm', 'busybox', 'echo', 'hi']));
    onlyHost(await same(['run', '--rm', 'busybox', 'echo', 'hi'], { CORRAL_HOST: host }));
    const local = await run(corralBin, ['--root', d.root, 'rm', 'no-such-one'], { CORRAL_HOST: host });
    expect(local.seen[0]).toBe(1);
    if (bundled) expect(local.loaded).toContain('corral.cjs');
  });

  it('runs -d, logs, rename, kill, wait, start, stop and rm as the whole CLI', async () => {
    // A command that changes a container cannot run twice on it: the whole CLI acts on one, the
    // bin on a twin, and their answers are compared with the names swapped.
    const h = ['--host', host];
    const twins = async (args: (name: string) => string[]) => {
      const whole = await run(main, [...h, ...args('w')]);
      const quick = await run(corralBin, [...h, ...args('q')]);
      const swap = (x: [number | null, string, string]) => JSON.stringify(x).replaceAll('-w', '-q');
      expect(swap(quick.seen), args('q').join(' ')).toBe(JSON.stringify(quick.seen));
      expect(JSON.stringify(quick.seen), args('q').join(' ')).toBe(swap(whole.seen));
      onlyHost(quick.loaded);
      return quick.seen;
    };
    for (const t of ['w', 'q']) {
      const r = await run(corralBin, [
        ...h,
        'run',
        '-d',
        '--name',
        `c-${t}`,
        'busybox',
        'sh',
        '-c',
        'echo hello; sleep 100',
      ]);
      expect(r.seen[1]).toMatch(/^[0-9a-f]{64}\n$/);
    }
    for (let i = 0; i < 50 && !(await run(corralBin, [...h, 'logs', 'c-q'])).seen[1]; i++)
      await new Promise((r) => setTimeout(r, 100));
    onlyHost(await same([...h, 'logs', 'c-q']));
    expect((await twins((t) => ['rename', `c-${t}`, `d-${t}`]))[0]).toBe(0);
    expect(await twins((t) => ['kill', `d-${t}`])).toEqual([0, expect.stringMatching(/^d-/), '']);
    expect(await twins((t) => ['wait', `d-${t}`])).toEqual([0, '137\n', '']);
    expect((await twins((t) => ['start', `d-${t}`]))[0]).toBe(0);
    expect((await twins((t) => ['stop', '-t', '0', `d-${t}`]))[0]).toBe(0);
    expect((await twins((t) => ['rm', `d-${t}`]))[0]).toBe(0);
    // Gone: Docker's error, exit 1.
    expect((await twins((t) => ['rm', `d-${t}`]))[0]).toBe(1);
  });

  it('fails on bad flags and arguments as the whole CLI (usage errors, exit 125 for run)', async () => {
    const h = ['--host', host];
    for (const args of [
      [...h, 'run', '--rm', '--no-such-flag', 'busybox', 'true'],
      [...h, 'run', '--rm'],
      [...h, 'run', '--memory', 'lots', 'busybox', 'true'],
      [...h, 'run', '--rootfs', dir, 'true'],
      [...h, 'stop'],
      [...h, 'exec', 'no-such-one', 'true'],
      [...h, 'run', '--help'],
    ])
      onlyHost(await same(args));
  });

  it('fails on a bad host as the whole CLI, and sends --root, switches and other commands to it', async () => {
    const run1 = ['run', '--rm', 'busybox', 'true'];
    onlyHost(await same(['--host', 'tcp://127.0.0.1:1', ...run1]));
    onlyHost(await same(['--host', `unix://${join(dir, 'no-corrald.sock')}`, ...run1]));
    // Both bundles refuse these before any request.
    await same(['--host', host, '--root', dir, ...run1]);
    await same(['--host', host, '--iptables=false', ...run1]);
    // A command the bundle does not hold: the whole CLI.
    const other = await same(['--host', host, 'inspect', 'no-such-one']);
    if (bundled) expect(other).toContain('corral.cjs');
  });

  it('gives -it a terminal (under a pty) and passes its exit code', async () => {
    const loaded = join(dir, 'loaded-tty.txt');
    const cmd = [process.execPath, corralBin, '--host', host, 'run', '--rm', '-it', 'busybox', 'sh']
      .map((a) => `'${a}'`)
      .join(' ');
    const r = await new Promise<{ status: number | null; out: string }>((resolve) => {
      const child = spawn('script', ['-qec', cmd, '/dev/null'], {
        env: { ...process.env, NODE_OPTIONS: `--require ${preload}`, CORRAL_TEST_LOADED: loaded },
      });
      let out = '';
      child.stdout.on('data', (x) => (out += x));
      child.stderr.on('data', (x) => (out += x));
      setTimeout(() => child.stdin.write('tty; echo answer=$((6*7))\n'), 1000);
      setTimeout(() => child.stdin.write('exit 5\n'), 1500);
      child.on('close', (status) => resolve({ status, out }));
    });
    expect(r.out).toContain('/dev/pts/0');
    expect(r.out).toContain('answer=42');
    expect(r.status).toBe(5);
    if (bundled) expect(readFileSync(loaded, 'utf8')).toContain(join(bundleDir, 'host.cjs'));
  });
});
