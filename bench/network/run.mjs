// What a container's network costs (issue 14): `corral run --rm busybox true` with
// --network none, host and bridge, side by side in one hyperfine run (rounds, so that the
// shared machine's load falls on all three alike); then each step of the bridge network timed
// through @corral/network on a private state root: the namespace, the join (the bridge and
// host-local plugins, the bridge check and its rules), the teardown, and the bridge/host-local
// and portmap plugin processes on their own. podman's none and bridge run in the same rounds,
// inside a network namespace of the benchmark's own: netavark turns on ip forwarding, which
// must never happen on the host (its sysctls and rules there are the namespace's alone).
// Results: bench/results/network.json.
// Run as root after `npm run build`: node bench/network/run.mjs [ROUNDS] [STEP_RUNS]
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cgroupParent } from '../lib/common.mjs';
import { podmanCommand, podmanRunFlags } from '../lib/podman.mjs';

const rounds = Number(process.argv[2] ?? 5);
const stepRuns = Number(process.argv[3] ?? 10);
const repo = fileURLToPath(new URL('../..', import.meta.url));
const { NetworkManager, parsePort } = await import(join(repo, 'packages/network/dist/index.js'));
const corralBin = join(repo, 'apps/cli/bin/corral.cjs');
const tmp = mkdtempSync('/var/tmp/corral-bench-network-');
const root = join(tmp, 'corral');
const corral = (...args) => [process.execPath, corralBin, '--root', root, ...args];
const sh = (argv) => argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a}'`)).join(' ');
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s[(s.length - 1) >> 1] + s[s.length >> 1]) / 2 : Number.NaN;
};
const ms = (x) => Math.round(x * 10) / 10;
const loadBefore = loadavg()[0];
const netns = `crl-bench-${process.pid}`;
const cgroups = cgroupParent(`corral-bench-network-${process.pid}`);
// nsenter, not ip netns exec: that one mounts a sysfs of its own, without the cgroup mounts.
const podman = ['nsenter', `--net=/run/netns/${netns}`, ...podmanCommand(tmp)];
const podmanRun = (mode) => [
  ...podman,
  'run',
  '--rm',
  ...podmanRunFlags(cgroups.path),
  '--network',
  mode,
  'busybox',
  'true',
];
let podmanOk = false;

try {
  // The image and the default network's bridge exist before the first timed run.
  execFileSync(
    corral('run', '--rm', 'busybox', 'true')[0],
    corral('run', '--rm', 'busybox', 'true').slice(1),
  );
  // The same busybox for podman, in its own storage, and the namespace it runs in.
  const tar = join(tmp, 'busybox.tar');
  execFileSync(corral('save')[0], [...corral('save').slice(1), '-o', tar, 'busybox']);
  execFileSync('ip', ['netns', 'add', netns]);
  execFileSync('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);
  podmanOk = spawnSync(podman[0], [...podman.slice(1), 'load', '-i', tar], { stdio: 'ignore' }).status === 0;
  const modes = ['none', 'host', 'bridge', ...(podmanOk ? ['podman none', 'podman bridge'] : [])];
  const argvOf = (m) =>
    m.startsWith('podman ')
      ? podmanRun(m.slice(7))
      : corral('run', '--rm', '--network', m, 'busybox', 'true');
  const times = Object.fromEntries(modes.map((m) => [m, []]));
  for (let r = 0; r < rounds; r++) {
    const out = join(tmp, `round-${r}.json`);
    const cmds = modes.map((m) => sh(argvOf(m)));
    const h = spawnSync('hyperfine', ['-N', '-w', '1', '-r', '3', '--export-json', out, ...cmds], {
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    if (h.status !== 0) throw new Error('hyperfine failed');
    const res = JSON.parse(readFileSync(out, 'utf8')).results;
    for (const [i, m] of modes.entries()) times[m].push(...res[i].times.map((t) => t * 1000));
  }
  const run = Object.fromEntries(modes.map((m) => [m, ms(median(times[m]))]));

  // The steps, on a manager of our own (its own bridge and pool).
  const mgr = new NetworkManager({
    root: join(tmp, 'steps'),
    pool: '10.239.0.0/16',
    defaultBridge: `crl-bn${process.pid % 100000}`,
  });
  const steps = { createSandbox: [], connect: [], destroySandbox: [], connectPorts: [], destroyPorts: [] };
  const time = async (k, fn) => {
    const s = performance.now();
    await fn();
    steps[k].push(performance.now() - s);
  };
  await mgr.defaultNetwork();
  await mgr.createSandbox('warm');
  await mgr.connect('warm', 'warm', 'bridge');
  await mgr.destroySandbox('warm');
  for (let i = 0; i < stepRuns; i++) {
    await time('createSandbox', () => mgr.createSandbox(`c${i}`));
    await time('connect', () => mgr.connect(`c${i}`, `c${i}`, 'bridge'));
    await time('destroySandbox', () => mgr.destroySandbox(`c${i}`));
    await mgr.createSandbox(`p${i}`);
    await time('connectPorts', () =>
      mgr.connect(`p${i}`, `p${i}`, 'bridge', { ports: [parsePort('127.0.0.1::80')] }),
    );
    await time('destroyPorts', () => mgr.destroySandbox(`p${i}`));
  }
  await mgr.removeNetwork('bridge');
  const stepMedians = Object.fromEntries(Object.entries(steps).map(([k, v]) => [k, ms(median(v))]));

  const result = {
    date: new Date().toISOString(),
    load: { before: loadBefore, after: loadavg()[0] },
    rounds,
    runsPerMode: times.none.length,
    runRmMedianMs: run,
    bridgeOverNoneMs: ms(run.bridge - run.none),
    hostOverNoneMs: ms(run.host - run.none),
    ...(podmanOk ? { podmanBridgeOverNoneMs: ms(run['podman bridge'] - run['podman none']) } : {}),
    stepRuns,
    stepMedianMs: stepMedians,
  };
  mkdirSync(join(repo, 'bench/results'), { recursive: true });
  writeFileSync(join(repo, 'bench/results/network.json'), `${JSON.stringify(result, null, 2)}\n`);
  console.log(`load ${loadBefore.toFixed(1)} -> ${loadavg()[0].toFixed(1)}`);
  console.log('| corral run --rm busybox true | median ms |');
  console.log('| --- | --- |');
  for (const m of modes) console.log(`| ${m.startsWith('podman') ? m : `--network ${m}`} | ${run[m]} |`);
  console.log(`bridge over none: ${result.bridgeOverNoneMs} ms; host over none: ${result.hostOverNoneMs} ms`);
  if (podmanOk) console.log(`podman's bridge over its none: ${result.podmanBridgeOverNoneMs} ms`);
  console.log('| step (library) | median ms |');
  console.log('| --- | --- |');
  for (const [k, v] of Object.entries(stepMedians)) console.log(`| ${k} | ${v} |`);
} finally {
  spawnSync(process.execPath, [corralBin, '--root', root, 'network', 'down'], { stdio: 'ignore' });
  if (podmanOk) spawnSync(podman[0], [...podman.slice(1), 'system', 'reset', '-f'], { stdio: 'ignore' });
  spawnSync('ip', ['netns', 'del', netns], { stdio: 'ignore' });
  const left = cgroups.cleanup();
  if (left.length) console.error(`cgroups left: ${left.join(', ')}`);
  rmSync(tmp, { recursive: true, force: true });
}
