// corral-runtime beside runc (and crun where it accepts the host) in one run, interleaved:
// `run` of `true` in a busybox root, `state`, create/start/state/delete one by one (the calls
// podman makes for each container), and podman run --rm through either runtime; with
// `node -e 0` as the yardstick for one Node start. Everything runs without NODE_EXTRA_CA_CERTS
// (corral-runtime's #! line drops it; with it set, each Node start here also parses the CA
// bundle): `node -e 0` with it is a row of its own when the caller has it. Targets (issue 12): corral-runtime run no
// slower than node -e 0 + runc run; podman through corral-runtime at most 2x podman through runc.
// Then a profile of corral-runtime run: the time of each phase, from marks put into a traced
// copy of the bundle (dist/bundle-trace, removed after), medians over the runs; `run` takes
// its fast path (no Node init) for this bundle: CORRAL_RUNTIME_FAST=0 measures the init's.
// Run as root after `npm run build`: node bench/runtime/cli.mjs [RUNS]
import { execFileSync, spawnSync } from 'node:child_process';
import {
  closeSync,
  copyFileSync,
  cpSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cgroupParent } from '../lib/common.mjs';
import { podmanCommand, podmanRunFlags } from '../lib/podman.mjs';

const runs = Number(process.argv[2] ?? 20);
const loadBefore = loadavg()[0];
const repo = fileURLToPath(new URL('../..', import.meta.url));
const runtimeDir = join(repo, 'packages/runtime');
const bin = join(runtimeDir, 'bin/corral-runtime.cjs');
const tmp = mkdtempSync('/var/tmp/corral-bench-cli-');
// The environment of every command measured: the caller's, without NODE_EXTRA_CA_CERTS.
const env = { ...process.env };
delete env.NODE_EXTRA_CA_CERTS;
const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s[(s.length - 1) >> 1] + s[s.length >> 1]) / 2 : Number.NaN;
};

// A busybox root and one bundle for every runtime (runc spec's namespaces, no network; a cgroup
// by id beneath the runtime's own, as runc does without cgroupsPath).
const rootfs = join(tmp, 'rootfs');
mkdirSync(join(rootfs, 'bin'), { recursive: true });
for (const d of ['proc', 'dev', 'sys', 'etc', 'tmp']) mkdirSync(join(rootfs, d));
copyFileSync('/bin/busybox', join(rootfs, 'bin/busybox'));
for (const a of execFileSync('/bin/busybox', ['--list'], { encoding: 'utf8' }).split('\n'))
  if (a && a !== 'busybox') symlinkSync('busybox', join(rootfs, 'bin', a));
const bundle = join(tmp, 'bundle');
mkdirSync(bundle);
writeFileSync(
  join(bundle, 'config.json'),
  JSON.stringify({
    ociVersion: '1.0.2',
    process: {
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
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755'] },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
    ],
    linux: {
      namespaces: [{ type: 'pid' }, { type: 'mount' }, { type: 'uts' }, { type: 'ipc' }],
      resources: { pids: { limit: 100 } },
    },
  }),
);

// podman keeps its state here; its containers' cgroups lie beneath our own cgroup in every
// hierarchy, conmon stays in ours (machine rules).
const podmanCgroup = cgroupParent(`corral-bench-cli-${process.pid}`);
const podman = (runtime) =>
  podmanCommand(tmp, [
    '--runtime',
    runtime,
    '--runtime-flag',
    `root=${join(tmp, `podman-${runtime === 'runc' ? 'runc' : 'corral'}-state`)}`,
  ]);
const podmanRun = (runtime) => [
  ...podman(runtime),
  'run',
  '--rm',
  '--network',
  'none',
  ...podmanRunFlags(podmanCgroup.path),
  'localhost/bench-busybox',
  'true',
];

// The kept containers' name (and cgroup: each runtime makes its cgroup by the id).
const KEEP = `keep-${process.pid}`;
let n = 0;
const id = (p) => `${p}${process.pid}-${n++}`;
/** A stopped container's status, polled (not timed) before its delete, as podman waits for conmon. */
function waitStopped(exe, root, cid) {
  for (let i = 0; i < 500; i++) {
    const r = spawnSync(exe, ['--root', root, 'state', cid], { encoding: 'utf8', env });
    if (r.status !== 0 || JSON.parse(r.stdout).status === 'stopped') return;
    spawnSync('sleep', ['0.01']);
  }
}
/** create, start and delete of one container per round, measured one by one. */
function lifecycle(label, exe, root) {
  let cid;
  return [
    {
      name: `${label} create`,
      quiet: true,
      argv: () => {
        cid = id(label[0]);
        return [exe, '--root', root, 'create', '--bundle', bundle, cid];
      },
    },
    { name: `${label} start`, argv: () => [exe, '--root', root, 'start', cid] },
    {
      name: `${label} delete`,
      before: () => waitStopped(exe, root, cid),
      argv: () => [exe, '--root', root, 'delete', '--force', cid],
    },
  ];
}
const commands = [
  { name: 'node -e 0', argv: () => [process.execPath, '-e', '0'] },
  ...(process.env.NODE_EXTRA_CA_CERTS
    ? [
        {
          name: 'node -e 0 (NODE_EXTRA_CA_CERTS)',
          argv: () => [
            'env',
            `NODE_EXTRA_CA_CERTS=${process.env.NODE_EXTRA_CA_CERTS}`,
            process.execPath,
            '-e',
            '0',
          ],
        },
      ]
    : []),
  { name: 'runc run', argv: () => ['runc', '--root', join(tmp, 'runc'), 'run', '--bundle', bundle, id('r')] },
  {
    name: 'crun run',
    argv: () => ['crun', '--root', join(tmp, 'crun'), 'run', '--bundle', bundle, id('c')],
    optional: 'crun',
  },
  {
    name: 'corral-runtime run',
    argv: () => [bin, '--root', join(tmp, 'corral'), 'run', '--bundle', bundle, id('x')],
  },
  {
    // The same through the Node init, which `run` no longer takes for this bundle.
    name: 'corral-runtime run (init)',
    argv: () => [
      'env',
      'CORRAL_RUNTIME_FAST=0',
      bin,
      '--root',
      join(tmp, 'corral'),
      'run',
      '--bundle',
      bundle,
      id('y'),
    ],
  },
  { name: 'runc state', argv: () => ['runc', '--root', join(tmp, 'runc-keep'), 'state', KEEP] },
  {
    name: 'corral-runtime state',
    argv: () => [bin, '--root', join(tmp, 'corral-keep'), 'state', `${KEEP}c`],
  },
  ...lifecycle('runc', 'runc', join(tmp, 'runc-steps')),
  ...lifecycle('corral-runtime', bin, join(tmp, 'corral-steps')),
];
if (has('podman')) {
  const tar = join(tmp, 'busybox.tar');
  execFileSync('tar', ['-C', rootfs, '-cf', tar, '.']);
  execFileSync(podman('runc')[0], [...podman('runc').slice(1), 'import', tar, 'localhost/bench-busybox'], {
    stdio: 'ignore',
  });
  commands.push({ name: 'podman run (runc)', argv: () => podmanRun('runc') });
  commands.push({ name: 'podman run (corral-runtime)', argv: () => podmanRun(bin) });
}

// A container kept running under each runtime, for `state`.
const keep = join(tmp, 'keep');
mkdirSync(keep);
const keepSpec = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8'));
keepSpec.process.args = ['sleep', '1000'];
writeFileSync(join(keep, 'config.json'), JSON.stringify(keepSpec));
execFileSync('runc', ['--root', join(tmp, 'runc-keep'), 'run', '-d', '--bundle', keep, KEEP], {
  stdio: 'ignore',
});
execFileSync(bin, ['--root', join(tmp, 'corral-keep'), 'run', '-d', '--bundle', keep, `${KEEP}c`], {
  stdio: 'ignore',
});

/**
 * Wall and CPU (user + system, from GNU time) of one run, or the error when it fails. `create`
 * runs with no pipe of ours (the container's init keeps its stdio: a pipe would stay open):
 * its stderr goes to a file.
 */
function timeOnce(argv, quiet = false) {
  const cpuFile = join(tmp, 'cpu');
  const errFile = join(tmp, 'stderr');
  const errFd = quiet ? openSync(errFile, 'w') : null;
  const t = process.hrtime.bigint();
  const r = spawnSync('/usr/bin/time', ['-f', '%U %S', '-o', cpuFile, ...argv], {
    encoding: 'utf8',
    env,
    stdio: quiet ? ['ignore', 'ignore', errFd] : 'pipe',
  });
  const wall = Number(process.hrtime.bigint() - t) / 1e6;
  if (errFd !== null) closeSync(errFd);
  const stderr = quiet ? readFileSync(errFile, 'utf8') : r.stderr;
  if (r.status !== 0) return { error: (stderr || r.stdout || `exit ${r.status}`).trim().split('\n').pop() };
  const [u, s] = readFileSync(cpuFile, 'utf8').trim().split('\n').pop().split(' ').map(Number);
  return { wall, cpu: (u + s) * 1000 };
}

const samples = new Map(commands.map((c) => [c.name, { wall: [], cpu: [], error: undefined }]));
for (const c of commands) {
  c.before?.();
  const probe =
    c.optional && !has(c.optional)
      ? { error: `${c.optional} is not installed` }
      : timeOnce(c.argv(), c.quiet);
  if (probe.error) samples.get(c.name).error = probe.error;
}
const live = commands.filter((c) => !samples.get(c.name).error);
// warm-up
for (let i = 0; i < 2; i++)
  for (const c of live) {
    c.before?.();
    timeOnce(c.argv(), c.quiet);
  }
for (let i = 0; i < runs; i++) {
  for (const c of live) {
    c.before?.();
    const r = timeOnce(c.argv(), c.quiet);
    if (r.error) continue;
    samples.get(c.name).wall.push(r.wall);
    samples.get(c.name).cpu.push(r.cpu);
  }
}

// The profile: phase marks in a traced copy of the bundle.
const traced = join(runtimeDir, 'dist/bundle-trace');
rmSync(traced, { recursive: true, force: true });
cpSync(join(runtimeDir, 'dist/bundle'), traced, { recursive: true });
const mark = (what) =>
  `process.stderr.write(\`MARK ${what} \${(performance.timeOrigin + performance.now()).toFixed(2)}\\n\`);`;
// A mark whose line has changed skips the profile (said at the end), so that the cleanup runs.
const stale = [];
const patch = (file, edits, head) => {
  let s = readFileSync(join(traced, file), 'utf8');
  if (head) {
    const at = s.indexOf('\n', s.indexOf('__corralModuleUrl')) + 1;
    s = `${s.slice(0, at)}${head}\n${s.slice(at)}`;
  }
  for (const [a, b] of edits) {
    if (!s.includes(a)) {
      stale.push(`${file} has no ${JSON.stringify(a)}`);
      continue;
    }
    s = s.split(a).join(b);
  }
  writeFileSync(join(traced, file), s);
};
patch(
  'main.cjs',
  [],
  `process.stderr.write(\`MARK node-started \${performance.timeOrigin.toFixed(2)}\\n\`);${mark('cli-script')}`,
);
patch(
  'cmd-early.cjs',
  [
    ['    putEarlyInit({', `    ${mark('init-spawning')}\n    putEarlyInit({`],
    [
      '  const node = sealedNode(options.node);\n',
      `  const node = sealedNode(options.node);\n  ${mark('sealed')}\n`,
    ],
    ['      pidNamespace\n    });\n', `      pidNamespace\n    });\n    ${mark('spawned')}\n`],
  ],
  mark('cli-loaded'),
);
patch(
  'cmd-create.cjs',
  [
    [
      '    await rt.start(p.id);',
      `    ${mark('created')}\n    await rt.start(p.id);\n    ${mark('started')}`,
    ],
    ['  const code = await c.wait();', `  const code = await c.wait();\n  ${mark('exited')}`],
    ['  return code;\n}', `  ${mark('deleted')}\n  return code;\n}`],
    // run's fast path (no init): runFast, its vfork child, the wait.
    [
      'fast path (vfork child, no Node init)`);\n',
      `fast path (vfork child, no Node init)\`);\n  ${mark('fast-start')}\n`,
    ],
    [
      '    const result = vforkExec(flags, () => {',
      `    ${mark('fast-clone')}\n    const result = vforkExec(flags, () => {`,
    ],
    ['    pid = result.pid;\n', `    pid = result.pid;\n    ${mark('fast-execd')}\n`],
    ['    code = await exited(r);', `    code = await exited(r);\n    ${mark('exited')}`],
  ],
  mark('create-loaded'),
);
patch(
  'init.cjs',
  [
    ['function main() {\n', `function main() {\n  ${mark('init-loaded')}\n`],
    [
      '  const config = JSON.parse(first);\n',
      `  const config = JSON.parse(first);\n  ${mark('init-config')}\n`,
    ],
    [
      '  writeLineSync(SYNC_FD, { type: "ready"',
      `  ${mark('init-ready')}\n  writeLineSync(SYNC_FD, { type: "ready"`,
    ],
  ],
  `process.stderr.write(\`MARK init-node-started \${performance.timeOrigin.toFixed(2)}\\n\`);${mark('init-script')}`,
);
const phases = [
  ['CLI: node start (exec to its script)', 'node-started', 'cli-script'],
  ['CLI: loading main and early', 'cli-script', 'cli-loaded'],
  ['CLI: flags, config, spawn of the init', 'cli-loaded', 'init-spawning'],
  ['fast path: flags, config, loading create', 'cli-loaded', 'fast-start'],
  ['fast path: runtime, spec, state folder, cgroup', 'fast-start', 'fast-clone'],
  ['fast path: vfork child (namespaces, mounts, pivot_root, user, exec)', 'fast-clone', 'fast-execd'],
  ['fast path: state.json, program runs and exits', 'fast-execd', 'exited'],
  ['CLI: read-only view of node (koffi, overlay)', 'init-spawning', 'sealed'],
  ['CLI: spawn call (fork, exec)', 'sealed', 'spawned'],
  ['init: exec to Node start (node start, part 1)', 'spawned', 'init-node-started'],
  ['init: node start (to its script, part 2)', 'init-node-started', 'init-script'],
  ['init: loading its bundle (koffi)', 'init-script', 'init-loaded'],
  ['init: waiting for its config', 'init-loaded', 'init-config'],
  ['init: namespaces, mounts, pivot_root, user', 'init-config', 'init-ready'],
  ['create after ready (state.json)', 'init-ready', 'created'],
  ['start (exec fifo)', 'created', 'started'],
  ['program runs and exits', 'started', 'exited'],
  ['delete (cgroup, state)', 'exited', 'deleted'],
  ['total', 'node-started', 'deleted'],
];
const phaseSamples = new Map(phases.map(([name]) => [name, []]));
const overlap = [];
for (let i = 0; i < (stale.length ? 0 : runs); i++) {
  const r = spawnSync(
    process.execPath,
    [join(traced, 'main.cjs'), '--root', join(tmp, 'traced'), 'run', '--bundle', bundle, id('t')],
    { encoding: 'utf8', env },
  );
  const at = Object.fromEntries(
    [...r.stderr.matchAll(/^MARK (\S+) (\S+)$/gm)].map((m) => [m[1], Number(m[2])]),
  );
  for (const [name, from, to] of phases)
    if (at[from] && at[to]) phaseSamples.get(name).push(at[to] - at[from]);
  if (at['create-loaded'] && at['init-spawning']) overlap.push(at['create-loaded'] - at['init-spawning']);
}
rmSync(traced, { recursive: true, force: true });

// Report.
const med = (name, what = 'wall') => median(samples.get(name)?.[what] ?? []);
console.log(
  `corral-runtime beside runc, ${runs} interleaved runs each (ms, median wall / CPU); load average ${loadBefore.toFixed(1)} -> ${loadavg()[0].toFixed(1)} on ${availableParallelism()} CPUs`,
);
const results = [];
for (const c of commands) {
  const s = samples.get(c.name);
  const row = { name: c.name, wall: median(s.wall), cpu: median(s.cpu), runs: s.wall.length, error: s.error };
  results.push(row);
  console.log(
    s.error
      ? `${c.name.padEnd(30)} failed: ${s.error}`
      : `${c.name.padEnd(30)} ${row.wall.toFixed(1).padStart(8)} ${row.cpu.toFixed(0).padStart(6)}`,
  );
}
const node0 = med('node -e 0');
const runcRun = med('runc run');
const corralRun = med('corral-runtime run');
const targets = {
  runRatioToRunc: corralRun / runcRun,
  runOverheadBeyondNodeOverRunc: (corralRun - node0) / runcRun,
  runOverheadBeyondNodeOverRuncCpu:
    (med('corral-runtime run', 'cpu') - med('node -e 0', 'cpu')) / med('runc run', 'cpu'),
  stateRatioToRunc: med('corral-runtime state') / med('runc state'),
  createRatioToRunc: med('corral-runtime create') / med('runc create'),
  startRatioToRunc: med('corral-runtime start') / med('runc start'),
  deleteRatioToRunc: med('corral-runtime delete') / med('runc delete'),
  podmanRatio: med('podman run (corral-runtime)') / med('podman run (runc)'),
};
console.log(
  `\ncorral-runtime run / runc run: ${targets.runRatioToRunc.toFixed(2)}x; (corral-runtime run - node -e 0) / runc run: ${targets.runOverheadBeyondNodeOverRunc.toFixed(2)} (target <= 1)`,
);
console.log(
  `in CPU time: (corral-runtime run - node -e 0) / runc run: ${targets.runOverheadBeyondNodeOverRuncCpu.toFixed(2)}`,
);
console.log(
  `corral-runtime / runc: state ${targets.stateRatioToRunc.toFixed(2)}x, create ${targets.createRatioToRunc.toFixed(2)}x, start ${targets.startRatioToRunc.toFixed(2)}x, delete ${targets.deleteRatioToRunc.toFixed(2)}x`,
);
if (Number.isFinite(targets.podmanRatio))
  console.log(
    `podman through corral-runtime / through runc: ${targets.podmanRatio.toFixed(2)}x (target <= 2)`,
  );
console.log('\nprofile of corral-runtime run (ms, median):');
for (const s of stale) console.log(`  skipped: ${s} (the profile marks need updating)`);
const profile = {};
// Phases of the way run did not take (the init's, or the fast path's) have no samples.
for (const [name] of phases) {
  if (!phaseSamples.get(name).length) continue;
  profile[name] = median(phaseSamples.get(name));
  console.log(`  ${name.padEnd(44)} ${profile[name].toFixed(1).padStart(7)}`);
}
if (overlap.length)
  console.log(
    `  (the CLI's loading of create overlaps the init's start by ${median(overlap).toFixed(1)} ms)`,
  );

mkdirSync(join(repo, 'bench/results'), { recursive: true });
writeFileSync(
  join(repo, 'bench/results/runtime-cli.json'),
  `${JSON.stringify({ date: new Date().toISOString(), runs, load: [loadBefore, loadavg()[0]], results, targets, profile }, null, 2)}\n`,
);

// Cleanup: kept containers, podman's storage, its cgroups and the folder.
spawnSync('runc', ['--root', join(tmp, 'runc-keep'), 'delete', '--force', KEEP]);
for (const [exe, root] of [
  ['runc', join(tmp, 'runc-steps')],
  [bin, join(tmp, 'corral-steps')],
]) {
  const ids = spawnSync(exe, ['--root', root, 'list', '-q'], { encoding: 'utf8', env }).stdout ?? '';
  for (const cid of ids.split('\n').filter(Boolean))
    spawnSync(exe, ['--root', root, 'delete', '--force', cid]);
}
spawnSync(bin, ['--root', join(tmp, 'corral-keep'), 'delete', '--force', `${KEEP}c`]);
if (has('podman'))
  spawnSync(podman('runc')[0], [...podman('runc').slice(1), 'system', 'reset', '-f'], { stdio: 'ignore' });
for (const problem of podmanCgroup.cleanup()) console.error(`cgroup left: ${problem}`);
for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n').reverse()) {
  const mp = line.split(' ')[4];
  if (mp?.startsWith(tmp)) spawnSync('umount', ['-l', mp]);
}
rmSync(tmp, { recursive: true, force: true });
