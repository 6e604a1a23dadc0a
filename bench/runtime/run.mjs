// Container start-to-exit latency of `true` in a busybox root, side by side in one run:
// runc run, crun run, corral's runtime alone (bench/runtime/run-bundle.mjs), `corral run
// --rootfs` (engine: overlay, records, runtime, the network: host, none, bridge) and `podman run
// --rootfs`, as ratios to runc.
// podman's cgroupfs manager uses one cgroup parent path in every hierarchy: it gets the
// deepest of our own cgroup paths as prefix, so it stays beneath ours in each (machine rule).
// Run as root after `npm run build`: node bench/runtime/run.mjs [RUNS]
// (BENCH_BASELINE=/path/to/an/older/built/checkout adds that build beside this one.)
import { execFileSync, spawnSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cgroupParent, sh } from '../lib/common.mjs';
import { podmanRunTrue } from '../lib/podman.mjs';

const runs = Number(process.argv[2] ?? 20);
const repo = fileURLToPath(new URL('../..', import.meta.url));
const tmp = mkdtempSync('/var/tmp/corral-bench-runtime-');
const rootfs = join(tmp, 'rootfs');
const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

// A busybox root from Debian's busybox-static, shared by every runtime.
mkdirSync(join(rootfs, 'bin'), { recursive: true });
for (const d of ['proc', 'dev', 'sys', 'etc', 'tmp']) mkdirSync(join(rootfs, d));
copyFileSync('/bin/busybox', join(rootfs, 'bin/busybox'));
for (const a of execFileSync('/bin/busybox', ['--list'], { encoding: 'utf8' }).split('\n')) {
  if (a && a !== 'busybox') symlinkSync('busybox', join(rootfs, 'bin', a));
}

// One OCI config for runc, crun and corral's runtime: the namespaces corral uses, a cgroup
// path relative to the runtime's own cgroup (machine rule), no network namespace.
const bundle = join(tmp, 'bundle');
mkdirSync(bundle);
const spec = {
  ociVersion: '1.0.2',
  process: {
    terminal: false,
    user: { uid: 0, gid: 0 },
    args: ['true'],
    env: ['PATH=/bin'],
    cwd: '/',
    noNewPrivileges: true,
  },
  root: { path: rootfs, readonly: true },
  hostname: 'bench',
  mounts: [
    { destination: '/proc', type: 'proc', source: 'proc' },
    {
      destination: '/dev',
      type: 'tmpfs',
      source: 'tmpfs',
      options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'],
    },
    {
      destination: '/dev/pts',
      type: 'devpts',
      source: 'devpts',
      options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620'],
    },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
  ],
  linux: {
    namespaces: [{ type: 'pid' }, { type: 'mount' }, { type: 'uts' }, { type: 'ipc' }],
    cgroupsPath: `corral-bench-${process.pid}`,
    resources: { pids: { limit: 100 } },
  },
};
writeFileSync(join(bundle, 'config.json'), JSON.stringify(spec));

const node = process.execPath;
const commands = [['runc', `runc --root ${tmp}/runc run --bundle ${bundle} r$$`]];
if (has('crun')) commands.push(['crun', `crun --root ${tmp}/crun run --bundle ${bundle} c$$`]);
// BENCH_BASELINE=/path/to/an/older/checkout (built) adds that build's runtime and CLI.
const builds = [['', repo]];
if (process.env.BENCH_BASELINE) builds.push([' (baseline)', process.env.BENCH_BASELINE]);
for (const [tag, dir] of builds) {
  commands.push([
    `corral runtime${tag}`,
    `${node} ${dir}/bench/runtime/run-bundle.mjs ${tmp}/corral-rt ${bundle}`,
  ]);
  // --network host was the default before issue 14; none is a namespace with lo only; bridge
  // (the default now) adds a veth on corral's bridge through the CNI plugins.
  for (const mode of tag ? [] : ['host', 'none', 'bridge'])
    commands.push([
      `corral run --network ${mode}${tag}`,
      `${node} ${dir}/apps/cli/bin/corral.js --root ${tmp}/corral run --rm --network ${mode} --rootfs ${rootfs} true`,
    ]);
  // An older build (before --network) runs in the host's namespace.
  if (tag)
    commands.push([
      `corral run --rootfs${tag}`,
      `${node} ${dir}/apps/cli/bin/corral.js --root ${tmp}/corral run --rm --rootfs ${rootfs} true`,
    ]);
}
const podmanCgroup = cgroupParent(`corral-bench-podman-${process.pid}`);
if (has('podman')) {
  commands.push(['podman run --rootfs', sh(podmanRunTrue(tmp, podmanCgroup.path, rootfs))]);
}

const results = [];
for (const [name, cmd] of commands) {
  // Check it works first: a failing peer is reported, not timed.
  const probe = spawnSync('sh', ['-c', cmd], { encoding: 'utf8' });
  if (probe.status !== 0) {
    results.push({ name, error: (probe.stderr || probe.stdout).trim().split('\n').pop() });
    continue;
  }
  const out = join(tmp, 'hf.json');
  execFileSync('hyperfine', ['--warmup', '2', '--runs', String(runs), '--export-json', out, cmd], {
    stdio: 'ignore',
  });
  const r = JSON.parse(readFileSync(out, 'utf8')).results[0];
  results.push({ name, mean: r.mean * 1000, median: r.median * 1000, stddev: r.stddev * 1000 });
}

const base = results.find((r) => r.name === 'runc')?.median;
console.log(`container start to exit of \`true\`, ${runs} runs each (ms, median; ratio to runc)`);
for (const r of results) {
  if (r.error) console.log(`${r.name.padEnd(30)} failed: ${r.error}`);
  else
    console.log(
      `${r.name.padEnd(30)} ${r.median.toFixed(1).padStart(8)} ±${r.stddev.toFixed(1).padEnd(6)} ${base ? `${(r.median / base).toFixed(2)}x` : ''}`,
    );
}
mkdirSync(join(repo, 'bench/results'), { recursive: true });
writeFileSync(
  join(repo, 'bench/results/runtime.json'),
  `${JSON.stringify({ date: new Date().toISOString(), runs, baseline: process.env.BENCH_BASELINE, results }, null, 2)}\n`,
);

// podman's cgroups (children first) and the ancestors it made, then its mounts and the folder.
for (const problem of podmanCgroup.cleanup()) console.error(`cgroup left: ${problem}`);
// corral's networks keep their bridge while they exist: take the bench root's down.
if (existsSync(join(tmp, 'corral', 'network', 'networks')))
  spawnSync(process.execPath, [
    join(repo, 'apps/cli/bin/corral.js'),
    '--root',
    join(tmp, 'corral'),
    'network',
    'down',
  ]);
// podman's storage mounts, if any, then the folder.
for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n').reverse()) {
  const mp = line.split(' ')[4];
  if (mp?.startsWith(tmp)) spawnSync('umount', ['-l', mp]);
}
if (existsSync(tmp)) rmSync(tmp, { recursive: true, force: true });
