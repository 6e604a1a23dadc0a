// Start-up of the corral CLI beside `node -e 0` and podman, side by side in one run (issue 15):
// `corral --help`, `version`, `ps`, `images` against `node -e 0` (target: at most 1.25x) and
// podman's ps/images/version; `corral run --rm busybox true` against `podman run --rm` (runc,
// cgroupfs; target: at most 0.8x) and `run -d` (target: at most 1.0x). Warm page cache, then
// cold (caches dropped before every run). hyperfine runs every command in rounds (a few runs
// each, all commands per round), so that the shared machine's load falls on all of them alike.
// Then a CPU profile (node --cpu-prof) of each corral command with its top costs named.
// Results: bench/results/cli.json and bench/results/cli-profile.md.
// corral runs as a shell runs it: the bin by its #! line, which starts Node without
// NODE_EXTRA_CA_CERTS (bin/corral.cjs). `node -e 0` is timed without NODE_EXTRA_CA_CERTS (the
// bare Node start: the ratios' base, wall and CPU time) and in this process's environment
// (reported beside), since Node parses that variable's file at every start.
// Run as root after `npm run build`: node bench/cli/run.mjs [ROUNDS] [COLD_RUNS]
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cgroupParent } from '../lib/common.mjs';
import { podmanCommand, podmanRunFlags as podmanRunFlagsFor } from '../lib/podman.mjs';
import { profileSummary } from '../lib/profile.mjs';

const rounds = Number(process.argv[2] ?? 6);
const coldRuns = Number(process.argv[3] ?? 5);
const repo = fileURLToPath(new URL('../..', import.meta.url));
const corralBin = join(repo, 'apps/cli/bin/corral.cjs');
const tmp = mkdtempSync('/var/tmp/corral-bench-cli-');
const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const q = (a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);
const sh = (argv) => argv.map(q).join(' ');
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s[(s.length - 1) >> 1] + s[s.length >> 1]) / 2 : Number.NaN;
};
const loadBefore = loadavg()[0];

const corral = [corralBin, '--root', join(tmp, 'corral')];
const extraCa = process.env.NODE_EXTRA_CA_CERTS;
const NODE = 'node -e 0';
const NODE_BARE = 'node -e 0, no NODE_EXTRA_CA_CERTS';
// podman keeps its state here; its containers' cgroup parent lies beneath our own cgroup in
// every hierarchy, conmon stays in ours (machine rules).
const cgroups = cgroupParent(`corral-bench-cli-${process.pid}`);
const podman = podmanCommand(tmp);
const podmanRunFlags = podmanRunFlagsFor(cgroups.path);

// What the runs left, also when the bench fails: containers, podman's cgroups (children
// first), mounts, the folder.
let podmanOk = false;
function cleanup() {
  spawnSync('sh', ['-c', `${sh(corral)} rm -f $(${sh(corral)} ps -aq) 2>/dev/null`]);
  spawnSync(corral[0], [...corral.slice(1), 'network', 'down']);
  if (podmanOk) spawnSync(podman[0], [...podman.slice(1), 'rm', '-af']);
  cgroups.cleanup();
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n').reverse()) {
    const mp = line.split(' ')[4];
    if (mp?.startsWith(tmp)) spawnSync('umount', ['-l', mp]);
  }
  rmSync(tmp, { recursive: true, force: true });
}
process.on('exit', cleanup);

// The same busybox in both: corral's own (embedded) image, saved and loaded into podman.
execFileSync(corral[0], [...corral.slice(1), 'run', '--rm', '--network', 'none', 'busybox', 'true']);
const tar = join(tmp, 'busybox.tar');
execFileSync(corral[0], [...corral.slice(1), 'save', '-o', tar, 'busybox']);
podmanOk = has('podman') && spawnSync(podman[0], [...podman.slice(1), 'load', '-i', tar]).status === 0;
// Something to list: three exited containers in each (a `ps` of an empty root reads no record).
for (let i = 0; i < 3; i++) {
  execFileSync(corral[0], [
    ...corral.slice(1),
    'run',
    '--network',
    'none',
    '--name',
    `listed${i}`,
    'busybox',
    'true',
  ]);
  if (podmanOk)
    spawnSync(podman[0], [
      ...podman.slice(1),
      'run',
      ...podmanRunFlags,
      '--network',
      'none',
      '--name',
      `listed${i}`,
      'busybox',
      'true',
    ]);
}

const commands = [
  { name: NODE, argv: [process.execPath, '-e', '0'], group: 'start' },
  // Always measured: the floor the targets are set against (the same as `node -e 0` where the
  // variable is unset).
  {
    name: NODE_BARE,
    argv: ['env', '-u', 'NODE_EXTRA_CA_CERTS', process.execPath, '-e', '0'],
    group: 'start',
  },
  { name: 'corral --help', argv: [...corral, '--help'], group: 'start' },
  { name: 'corral version', argv: [...corral, 'version'], group: 'start' },
  { name: 'corral ps', argv: [...corral, 'ps', '-a'], group: 'start' },
  { name: 'corral images', argv: [...corral, 'images'], group: 'start' },
  { name: 'corral run --rm', argv: [...corral, 'run', '--rm', 'busybox', 'true'], group: 'run' },
  {
    name: 'corral run --rm --network none',
    argv: [...corral, 'run', '--rm', '--network', 'none', 'busybox', 'true'],
    group: 'run',
  },
  {
    name: 'corral run -d',
    argv: [...corral, 'run', '-d', '--rm', '--network', 'none', 'busybox', 'true'],
    group: 'run',
  },
];
if (podmanOk) {
  commands.push(
    { name: 'podman ps', argv: [...podman, 'ps', '-a'], group: 'start' },
    { name: 'podman images', argv: [...podman, 'images'], group: 'start' },
    { name: 'podman version', argv: [...podman, 'version'], group: 'start' },
    {
      name: 'podman run --rm --network none',
      argv: [...podman, 'run', '--rm', ...podmanRunFlags, '--network', 'none', 'busybox', 'true'],
      group: 'run',
    },
    {
      name: 'podman run -d',
      argv: [...podman, 'run', '-d', '--rm', ...podmanRunFlags, '--network', 'none', 'busybox', 'true'],
      group: 'run',
    },
  );
}

// A command that fails is reported, not timed.
const errors = {};
for (const c of commands) {
  const r = spawnSync(c.argv[0], c.argv.slice(1), { encoding: 'utf8' });
  if (r.status !== 0) errors[c.name] = (r.stderr || r.stdout).trim().split('\n').pop();
}
const live = commands.filter((c) => !errors[c.name]);

/** hyperfine over `cmds`; the times of each (ms), from its JSON export. */
function hyperfine(cmds, runs, extra = []) {
  const out = join(tmp, 'hf.json');
  const args = ['-N', '--runs', String(runs), '--export-json', out, ...extra];
  for (const c of cmds) args.push('-n', c.name, sh(c.argv));
  const r = spawnSync('hyperfine', args, { encoding: 'utf8' });
  if (r.status !== 0)
    throw new Error(`hyperfine failed: ${r.stderr.trim().split('\n').slice(-6).join('\n')}`);
  return JSON.parse(readFileSync(out, 'utf8')).results.map((r) => ({
    name: r.command,
    times: r.times.map((t) => t * 1000),
    user: r.user * 1000,
    system: r.system * 1000,
  }));
}

function measure(runsPerRound, nRounds, extra) {
  const all = new Map(live.map((c) => [c.name, { wall: [], cpu: [] }]));
  for (let i = 0; i < nRounds; i++)
    for (const r of hyperfine(live, runsPerRound, extra)) {
      all.get(r.name).wall.push(...r.times);
      all.get(r.name).cpu.push(r.user + r.system);
    }
  return Object.fromEntries(
    [...all].map(([name, s]) => [
      name,
      { median: median(s.wall), cpuMean: median(s.cpu), runs: s.wall.length },
    ]),
  );
}

const warm = measure(5, rounds, ['--warmup', '1']);
// Cold: every run after dropping the page cache (the shared machine slows meanwhile).
const cold = measure(coldRuns, 1, ['--prepare', "sh -c 'sync; echo 3 > /proc/sys/vm/drop_caches'"]);

const ratios = (m) => {
  const r = {};
  // The bare Node start first: the honest floor (the bin starts Node without the variable).
  for (const base of [NODE_BARE, NODE])
    for (const n of ['corral --help', 'corral version', 'corral ps', 'corral images'])
      if (m[n] && m[base]) r[`${n} / ${base}`] = m[n].median / m[base].median;
  // CPU time (user + system), steadier than wall time on a shared machine.
  for (const n of ['corral --help', 'corral version', 'corral ps', 'corral images'])
    if (m[n] && m[NODE_BARE]) r[`${n} / ${NODE_BARE} (CPU)`] = m[n].cpuMean / m[NODE_BARE].cpuMean;
  const pairs = [
    // podman's default network would add a bridge and NAT rules to the host: not run here.
    ['corral run --rm', 'podman run --rm --network none'],
    ['corral run --rm --network none', 'podman run --rm --network none'],
    ['corral run -d', 'podman run -d'],
    ['corral ps', 'podman ps'],
    ['corral images', 'podman images'],
    ['corral version', 'podman version'],
  ];
  for (const [a, b] of pairs) if (m[a] && m[b]) r[`${a} / ${b}`] = m[a].median / m[b].median;
  return r;
};

/** Where a run of the bundled CLI spends its time: the bundle, Node's module loader, Node's own. */
const bundleKind = (f) =>
  f.url.includes('/bundle/')
    ? 'corral (bundle)'
    : f.url.startsWith('node:internal/modules') || f.functionName === 'compileForInternalLoader'
      ? 'module loading'
      : f.url.startsWith('node:') || !f.url
        ? 'node (builtins, bootstrap, native)'
        : 'other';

// The profile of each corral command: top self time by function, and by kind, the mean of
// PROFILE_RUNS runs (one run's shares move with the shared machine's load).
const PROFILE_RUNS = 5;
function profile(c) {
  const dir = join(tmp, `prof-${c.name.replace(/\W+/g, '-')}`);
  mkdirSync(dir);
  // The bin under node, in the environment its #! line gives it.
  const { NODE_EXTRA_CA_CERTS: _, ...env } = process.env;
  for (let i = 0; i < PROFILE_RUNS; i++)
    spawnSync(
      process.execPath,
      ['--cpu-prof', '--cpu-prof-interval', '250', '--cpu-prof-dir', dir, ...c.argv],
      {
        stdio: 'ignore',
        env,
      },
    );
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
  const sum = { total: 0, kinds: new Map(), functions: new Map() };
  for (const file of files) {
    const p = JSON.parse(readFileSync(join(dir, file), 'utf8'));
    const one = profileSummary(p, {
      kindOf: bundleKind,
      where: (u) => u.replace(/^.*\/(dist|lib)\//, ''),
      kinds: 100,
      functions: 1000,
    });
    sum.total += one.sampledMs;
    for (const k of ['kinds', 'functions'])
      for (const x of one[k]) sum[k].set(x.name, (sum[k].get(x.name) ?? 0) + x.ms);
  }
  const mean = (m, n) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([name, ms]) => ({ name, ms: Math.round((ms / files.length) * 10) / 10 }));
  return {
    name: c.name,
    runs: files.length,
    totalMs: Math.round(sum.total / files.length),
    kinds: mean(sum.kinds, 8),
    functions: mean(sum.functions, 12),
  };
}
const profiles = live.filter((c) => c.name.startsWith('corral')).map(profile);

const result = {
  date: new Date().toISOString(),
  node: process.version,
  rounds,
  coldRuns,
  load: { before: loadBefore, after: loadavg()[0] },
  nodeExtraCaCerts: extraCa ?? null,
  ratiosAgainst: `${NODE_BARE} (the bare Node start, the targets' floor), wall and CPU; also ${NODE} in this environment (NODE_EXTRA_CA_CERTS ${extraCa ? `=${extraCa}` : 'unset'})`,
  docker: 'not measured: bench/runtime runs no dockerd either',
  errors,
  warm: { medians: warm, ratios: ratios(warm) },
  cold: { medians: cold, ratios: ratios(cold) },
  profiles,
};
mkdirSync(join(repo, 'bench/results'), { recursive: true });
writeFileSync(join(repo, 'bench/results/cli.json'), `${JSON.stringify(result, null, 2)}\n`);

const md = [
  '# corral CLI start-up profile',
  '',
  `${result.date}, node ${process.version}, load ${loadBefore.toFixed(1)} → ${result.load.after.toFixed(1)} (bench/cli/run.mjs; numbers from bench/results/cli.json).`,
  '',
  `NODE_EXTRA_CA_CERTS ${extraCa ? `is ${extraCa}` : 'is unset'} here: \`${NODE}\` runs with it (the environment the commands run in); \`${NODE_BARE}\` without it, the ratios' base (the targets' floor). corral's bin starts Node without it.`,
  '',
  '| command | warm ms | cold ms |',
  '| --- | ---: | ---: |',
  ...live.map((c) => `| ${c.name} | ${warm[c.name].median.toFixed(0)} | ${cold[c.name].median.toFixed(0)} |`),
  '',
  '| ratio | warm | cold |',
  '| --- | ---: | ---: |',
  ...Object.keys(result.warm.ratios).map(
    (k) => `| ${k} | ${result.warm.ratios[k].toFixed(2)}x | ${result.cold.ratios[k]?.toFixed(2) ?? '-'}x |`,
  ),
  '',
  `Self time of each command under \`node --cpu-prof\` (250 µs samples), the mean of ${PROFILE_RUNS} runs (the profiler slows it: compare shares, not totals).`,
  '',
];
for (const p of profiles) {
  md.push(`## ${p.name} (${p.totalMs} ms sampled)`, '');
  md.push(`By kind: ${p.kinds.map((k) => `${k.name} ${k.ms} ms`).join('; ')}.`, '');
  md.push('| ms | function |', '| ---: | --- |');
  for (const f of p.functions) md.push(`| ${f.ms} | \`${f.name}\` |`);
  md.push('');
}
writeFileSync(join(repo, 'bench/results/cli-profile.md'), `${md.join('\n')}\n`);

console.log(`CLI start-up, ${rounds} rounds of 5 runs (warm) and ${coldRuns} cold runs; median ms`);
for (const c of commands) {
  if (errors[c.name]) console.log(`${c.name.padEnd(34)} failed: ${errors[c.name]}`);
  else
    console.log(
      `${c.name.padEnd(34)} warm ${warm[c.name].median.toFixed(1).padStart(7)}   cold ${cold[c.name].median.toFixed(1).padStart(7)}`,
    );
}
for (const [label, m] of [
  ['warm', result.warm.ratios],
  ['cold', result.cold.ratios],
])
  for (const [k, v] of Object.entries(m)) console.log(`${label.padEnd(5)} ${k.padEnd(62)} ${v.toFixed(2)}x`);
