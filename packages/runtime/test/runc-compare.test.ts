// runc as the reference: the same bundle and the same commands under runc (Debian's 1.1) and
// corral-runtime give the same state JSON shape, the same exit codes, and the same container
// as seen from inside (processes, mounts, hostname, capabilities, NoNewPrivs, seccomp, cgroups,
// limits, keyring, environment).
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { corralRuntime, runc } from './cli-helpers.js';
import { busyboxRootfs, tempDir } from './helpers.js';

const tmp = tempDir('runc-compare');
const rootfs = join(tmp, 'rootfs');
const bundleDir = join(tmp, 'bundle');
const tools = {
  runc: runc(tmp, join(tmp, 'runc-state')),
  corral: corralRuntime(tmp, join(tmp, 'corral-state')),
};
type Tool = keyof typeof tools;

/** What a container shows of itself, one section per line group. */
const PROBE = [
  'hostname',
  'grep -E "^(Cap|NoNewPrivs|Seccomp)" /proc/self/status',
  'ps -o pid,user,args',
  // mount point and type; options differ in order and harmless flags (see the README).
  'cut -d" " -f5,9 /proc/self/mountinfo | sort',
  // Without the times: a run that crosses a minute would differ.
  "ls -la /dev | cut -c1-10,35- | sed -E 's/[0-9]+:[0-9]+ //'",
  'grep -v "^0::" /proc/self/cgroup',
  'ls /sys/fs/cgroup',
  'cat /sys/fs/cgroup/pids/pids.max',
  'id',
  'ulimit -n',
  'grep -c _ses. /proc/keys',
  'umask',
  'pwd',
  'env | sort',
].join('; echo --; ');

function writeSpec(args: string[]): void {
  const spec = JSON.parse(readFileSync(join(bundleDir, 'config.json'), 'utf8'));
  spec.process.args = args;
  writeFileSync(join(bundleDir, 'config.json'), JSON.stringify(spec));
}

beforeAll(() => {
  busyboxRootfs(rootfs);
  mkdirSync(bundleDir);
  // The reference bundle is runc's own sample, with our rootfs, no terminal and a pids limit.
  expect(spawnSync('runc', ['spec', '--bundle', bundleDir]).status).toBe(0);
  const spec = JSON.parse(readFileSync(join(bundleDir, 'config.json'), 'utf8'));
  spec.root.path = rootfs;
  spec.process.terminal = false;
  spec.linux.resources.pids = { limit: 99 };
  spec.mounts.push({
    destination: '/sys/fs/cgroup',
    type: 'cgroup',
    source: 'cgroup',
    options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'],
  });
  writeFileSync(join(bundleDir, 'config.json'), JSON.stringify(spec));
});
afterAll(() => {
  for (const t of ['runc', 'corral'] as Tool[]) {
    const list = JSON.parse(tools[t](['list', '--format', 'json']).stdout || 'null') ?? [];
    for (const c of list) tools[t](['delete', '--force', c.id]);
  }
  rmSync(tmp, { recursive: true, force: true });
});

describe('the same bundle under runc and corral-runtime', () => {
  it('shows the same container from inside', () => {
    writeSpec(['sh', '-c', PROBE]);
    const seen: Record<string, string> = {};
    for (const t of ['runc', 'corral'] as Tool[]) {
      const r = tools[t](['run', '--bundle', bundleDir, 'probe']);
      expect(r.status, `${t}: ${r.stderr}`).toBe(0);
      seen[t] = r.stdout;
    }
    // PIDs after 1 depend on how many tasks each init had (runc's Go threads, Node's): not compared.
    const sections = (s: string) => s.split('--\n').map((x) => x.replace(/^( *)([2-9]|\d\d+) /gm, '$1N '));
    const [runcOut, corralOut] = [sections(seen.runc), sections(seen.corral)];
    expect(corralOut.length).toBe(runcOut.length);
    for (let i = 0; i < runcOut.length; i++)
      expect(corralOut[i], `section ${i}: ${PROBE.split('; echo --; ')[i]}`).toBe(runcOut[i]);
  });

  it("through the init too: the program's signal actions and mask are runc's", () => {
    // Node ignores SIGPIPE and SIGXFSZ, and an ignored signal stays ignored across execve.
    writeSpec(['sh', '-c', 'grep -E "^Sig(Ign|Blk)" /proc/self/status']);
    const runcOut = tools.runc(['run', '--bundle', bundleDir, 'sigs']);
    const corralOut = tools.corral(['run', '--bundle', bundleDir, 'sigs'], {
      env: { ...process.env, CORRAL_RUNTIME_FAST: '0' },
    });
    expect(corralOut.status, corralOut.stderr).toBe(0);
    expect(corralOut.stdout).toBe(runcOut.stdout);
    // SIGPIPE (13) and SIGXFSZ (25) not ignored: bits 12 and 24.
    const ignored = BigInt(`0x${/SigIgn:\t([0-9a-f]+)/.exec(corralOut.stdout)?.[1]}`);
    expect(ignored & ((1n << 12n) | (1n << 24n))).toBe(0n);
  });

  it('gives the same state JSON through the lifecycle', () => {
    writeSpec(['sleep', '100']);
    const states: Record<string, Record<string, unknown>[]> = { runc: [], corral: [] };
    for (const t of ['runc', 'corral'] as Tool[]) {
      const run = tools[t];
      const state = () => JSON.parse(run(['state', 'life']).stdout);
      expect(run(['create', '--bundle', bundleDir, 'life']).status).toBe(0);
      states[t].push(state());
      expect(run(['start', 'life']).status).toBe(0);
      states[t].push(state());
      expect(run(['pause', 'life']).status).toBe(0);
      states[t].push(state());
      expect(run(['resume', 'life']).status).toBe(0);
      expect(run(['kill', 'life', 'KILL']).status).toBe(0);
      for (let i = 0; i < 200 && state().status !== 'stopped'; i++) spawnSync('sleep', ['0.05']);
      states[t].push(state());
      expect(run(['delete', 'life']).status).toBe(0);
    }
    const shape = (s: Record<string, unknown>) => ({
      keys: Object.keys(s).sort(),
      status: s.status,
      pidIsZero: s.pid === 0,
      bundle: s.bundle,
      rootfs: s.rootfs,
    });
    expect(states.corral.map(shape)).toEqual(states.runc.map(shape));
    expect(states.corral.map((s) => s.status)).toEqual(['created', 'running', 'paused', 'stopped']);
  });

  it('exits with the same codes', () => {
    const codes: Record<string, (number | null)[]> = { runc: [], corral: [] };
    for (const t of ['runc', 'corral'] as Tool[]) {
      const run = tools[t];
      writeSpec(['sh', '-c', 'exit 3']);
      codes[t].push(run(['run', '--bundle', bundleDir, 'codes']).status);
      writeSpec(['no-such-program']);
      codes[t].push(run(['run', '--bundle', bundleDir, 'codes']).status);
      run(['delete', '--force', 'codes']);
      codes[t].push(run(['state', 'ghost']).status);
      codes[t].push(run(['kill', 'ghost', 'KILL']).status);
      codes[t].push(run(['delete', 'ghost']).status);
      codes[t].push(run(['delete', '--force', 'ghost']).status);
      codes[t].push(run(['exec', 'ghost', 'true']).status);
      writeSpec(['sleep', '100']);
      codes[t].push(run(['run', '-d', '--bundle', bundleDir, 'codes']).status);
      codes[t].push(run(['start', 'codes']).status);
      codes[t].push(run(['exec', 'codes', 'sh', '-c', 'exit 4']).status);
      codes[t].push(run(['kill', 'codes', 'NOSUCHSIGNAL']).status);
      codes[t].push(run(['delete', 'codes']).status);
      codes[t].push(run(['delete', '--force', 'codes']).status);
      codes[t].push(run(['state']).status);
    }
    expect(codes.corral).toEqual(codes.runc);
  });
});
