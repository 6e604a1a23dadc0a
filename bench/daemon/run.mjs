// corrald beside Debian's dockerd and podman, side by side in one run (issue 11): the same
// docker CLI (/usr/local/bin/docker) runs `run --rm --network none busybox true` against
// corrald (with its pool of keepers; a second corrald with --containers-per-keeper 1 gives each
// container a keeper of its own) and against a dockerd this script starts (private socket,
// data root and exec root, --iptables=false --bridge=none, cgroup parent beneath our own
// cgroup), and podman (runc, cgroupfs) runs the same. `--network none` on all three: with
// --bridge=none dockerd has no default network to give. hyperfine runs the commands in rounds
// (a few runs each, all commands per round) so that the shared machine's load falls on all
// alike. Then where corrald's time goes: a timeline of each phase of a run (from corrald's
// debug log and its event log) and a CPU profile of corrald serving runs.
// Results: bench/results/daemon.json. Target: corrald at most 0.2x dockerd.
// Run as root after `npm run build`: node bench/daemon/run.mjs [ROUNDS] [RUNS_PER_ROUND]
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cgroupParent, getJson, median, sh, sleep } from '../lib/common.mjs';
import { Daemons, DOCKER } from '../lib/daemons.mjs';
import { podmanCommand, podmanRunFlags } from '../lib/podman.mjs';
import { profileSummary } from '../lib/profile.mjs';

const rounds = Number(process.argv[2] ?? 5);
const perRound = Number(process.argv[3] ?? 4);
const repo = fileURLToPath(new URL('../..', import.meta.url));
const tmp = mkdtempSync('/var/tmp/corral-bench-daemon-');
const loadBefore = loadavg()[0];
const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

const corral = [process.execPath, join(repo, 'apps/cli/bin/corral.cjs'), '--root', join(tmp, 'corral')];
const cgroups = cgroupParent(`corral-bench-daemon-${process.pid}`);
const dockerEnv = { ...process.env, DOCKER_CONFIG: join(tmp, 'docker-config') };
delete dockerEnv.DOCKER_HOST;
delete dockerEnv.DOCKER_CONTEXT;

const daemons = new Daemons(dockerEnv);
let podmanOk = false;
let cleaned = false;
async function cleanup() {
  if (cleaned) return;
  cleaned = true;
  await daemons.stop();
  spawnSync(corral[0], [...corral.slice(1), 'rm', '-f', ...listDirs(join(tmp, 'corral', 'containers'))]);
  spawnSync(corral[0], [...corral.slice(1), 'network', 'down']);
  if (podmanOk) spawnSync(podman[0], [...podman.slice(1), 'rm', '-af']);
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n').reverse()) {
    const mp = line.split(' ')[4];
    if (mp?.startsWith(tmp)) spawnSync('umount', ['-l', mp]);
  }
  const problems = cgroups.cleanup();
  if (problems.length) console.error(`cgroups left: ${problems.join('; ')}`);
  daemons.removeRunDirs();
  rmSync(tmp, { recursive: true, force: true });
}
process.on('SIGINT', () => cleanup().then(() => process.exit(130)));
process.on('uncaughtException', (e) => {
  console.error(e);
  cleanup().then(() => process.exit(1));
});

function listDirs(d) {
  try {
    return readdirSync(d);
  } catch {
    return [];
  }
}

const podman = podmanCommand(tmp);
const podmanRun = podmanRunFlags(`${cgroups.path}/podman`);

function corraldArgv(sock, root, extra = [], flags = []) {
  return [
    process.execPath,
    ...extra,
    join(repo, 'apps/daemon/bin/corrald.js'),
    '-H',
    `unix://${sock}`,
    '--data-root',
    root,
    '--exec-root',
    join(tmp, `${root.split('/').pop()}-exec`),
    '--pidfile',
    join(tmp, `${root.split('/').pop()}.pid`),
    '--log-level',
    'debug',
    ...flags,
  ];
}

// podman reads DOCKER_CONFIG too: a config it can read.
mkdirSync(dockerEnv.DOCKER_CONFIG);
writeFileSync(join(dockerEnv.DOCKER_CONFIG, 'config.json'), '{}\n');
try {
  // The same busybox everywhere: corral's embedded image, saved, loaded into each.
  execFileSync(corral[0], [...corral.slice(1), 'run', '--rm', '--network', 'none', 'busybox', 'true']);
  const tar = join(tmp, 'busybox.tar');
  execFileSync(corral[0], [...corral.slice(1), 'save', '-o', tar, 'busybox']);

  const corraldSock = join(tmp, 'corrald.sock');
  const corrald = daemons.start(
    'corrald',
    corraldArgv(corraldSock, join(tmp, 'corrald')),
    join(tmp, 'corrald.log'),
  );
  await daemons.answering('corrald', corraldSock, corrald);
  if (daemons.docker(corraldSock, ['load', '-i', tar]).status !== 0)
    throw new Error('docker load into corrald failed');
  // The same with a keeper of its own for each container (no shared keeper: keeper-host.ts).
  const eachSock = join(tmp, 'corrald-each.sock');
  const each = daemons.start(
    'corrald (a keeper each)',
    corraldArgv(eachSock, join(tmp, 'corrald-each'), [], ['--containers-per-keeper', '1']),
    join(tmp, 'corrald-each.log'),
  );
  await daemons.answering('corrald (a keeper each)', eachSock, each);
  if (daemons.docker(eachSock, ['load', '-i', tar]).status !== 0)
    throw new Error('docker load into the second corrald failed');

  const dockerdSock = await daemons.startDockerd(
    tmp,
    `${cgroups.path}/dockerd`,
    `corral-bench-${process.pid}`,
  );
  if (dockerdSock) {
    if (daemons.docker(dockerdSock, ['load', '-i', tar]).status !== 0)
      throw new Error('docker load into dockerd failed');
  }
  podmanOk = has('podman') && spawnSync(podman[0], [...podman.slice(1), 'load', '-i', tar]).status === 0;

  const run = ['run', '--rm', '--network', 'none', 'busybox', 'true'];
  const commands = [
    { name: 'docker --version (the CLI alone)', argv: [DOCKER, '--version'] },
    { name: 'docker → corrald', argv: [DOCKER, '-H', `unix://${corraldSock}`, ...run] },
    {
      name: 'docker → corrald --containers-per-keeper 1',
      argv: [DOCKER, '-H', `unix://${eachSock}`, ...run],
    },
  ];
  if (dockerdSock)
    commands.push({ name: 'docker → dockerd', argv: [DOCKER, '-H', `unix://${dockerdSock}`, ...run] });
  if (podmanOk)
    commands.push({
      name: 'podman run --rm',
      argv: [...podman, 'run', '--rm', ...podmanRun, '--network', 'none', 'busybox', 'true'],
    });
  // corral's CLI as corrald's client, when it has --host; run as users run it (its #! line,
  // which leaves out NODE_EXTRA_CA_CERTS: `node corral.cjs` would parse that file first).
  const remote = [join(repo, 'apps/cli/bin/corral.cjs'), '--host', `unix://${corraldSock}`];
  if (spawnSync(remote[0], [...remote.slice(1), 'ps'], { encoding: 'utf8' }).status === 0)
    commands.push({ name: 'corral --host → corrald', argv: [...remote, ...run] });

  const errors = {};
  for (const c of commands) {
    const r = spawnSync(c.argv[0], c.argv.slice(1), { encoding: 'utf8', env: dockerEnv });
    if (r.status !== 0) errors[c.name] = (r.stderr || r.stdout).trim().split('\n').pop();
  }
  const live = commands.filter((c) => !errors[c.name]);

  const poolBefore = (await getJson(corraldSock, '/info')) ?? {};
  const wall = new Map(live.map((c) => [c.name, []]));
  for (let i = 0; i < rounds; i++) {
    const out = join(tmp, 'hf.json');
    const args = ['-N', '--runs', String(perRound), '--warmup', '1', '--export-json', out];
    for (const c of live) args.push('-n', c.name, sh(c.argv));
    const r = spawnSync('hyperfine', args, { encoding: 'utf8', env: dockerEnv });
    if (r.status !== 0) throw new Error(`hyperfine: ${r.stderr.trim().split('\n').slice(-6).join('\n')}`);
    for (const x of JSON.parse(readFileSync(out, 'utf8')).results)
      wall.get(x.command).push(...x.times.map((t) => t * 1000));
  }
  const medians = Object.fromEntries([...wall].map(([n, t]) => [n, { median: median(t), runs: t.length }]));
  const m = (n) => medians[n]?.median;
  const ratios = {};
  for (const [a, b] of [
    ['docker → corrald', 'docker → dockerd'],
    ['docker → corrald --containers-per-keeper 1', 'docker → dockerd'],
    ['docker → corrald', 'podman run --rm'],
    ['podman run --rm', 'docker → dockerd'],
    ['corral --host → corrald', 'podman run --rm'],
  ])
    if (m(a) && m(b)) ratios[`${a} / ${b}`] = m(a) / m(b);
  const info = (await getJson(corraldSock, '/info')) ?? {};
  const pool = info.KeeperPool ?? null;
  const poolUse =
    pool && poolBefore.KeeperPool
      ? {
          size: pool.size,
          hits: pool.hits - poolBefore.KeeperPool.hits,
          misses: pool.misses - poolBefore.KeeperPool.misses,
          unready: (pool.unready ?? 0) - (poolBefore.KeeperPool.unready ?? 0),
        }
      : null;

  // Where corrald's time goes: phases of runs, from its debug log (requests) and events.
  const timeline = await phases(corraldSock, join(tmp, 'corrald'), corrald, 8);
  // A CPU profile of a second corrald (same flags, own root) serving runs.
  const profile = await cpuProfile(tar, 8);

  const result = {
    date: new Date().toISOString(),
    node: process.version,
    rounds,
    runsPerRound: perRound,
    load: { before: loadBefore, after: loadavg()[0] },
    command: `docker ${run.join(' ')}`,
    errors,
    medians,
    ratios,
    target: 'docker → corrald / docker → dockerd at most 0.2',
    corraldPool: poolUse,
    corraldIdleMemory: info.DaemonMemory ?? null,
    corraldPoolMemory: pool ? { pssBytes: pool.pssBytes } : null,
    timeline,
    profile,
  };
  writeFileSync(join(repo, 'bench/results/daemon.json'), `${JSON.stringify(result, null, 2)}\n`);
  console.log(
    `docker run --rm busybox true, ${rounds} rounds of ${perRound} runs; median ms (load ${loadBefore.toFixed(1)})`,
  );
  for (const c of commands)
    console.log(
      `${c.name.padEnd(36)} ${errors[c.name] ? `failed: ${errors[c.name]}` : m(c.name).toFixed(1)}`,
    );
  for (const [k, v] of Object.entries(ratios)) console.log(`${k.padEnd(52)} ${v.toFixed(2)}x`);
  console.log(`pool: ${JSON.stringify(poolUse)}; timeline (median ms): ${JSON.stringify(timeline.medians)}`);
} finally {
  await cleanup();
}

/**
 * Runs `n` times, one at a time, and reads back each run's phases: the CLI's start (to its
 * first request), create, the start request until the start event (the launch: mount, spec,
 * init set-up, exec), start until die (the program, its exit reaching corrald, the teardown),
 * die until destroy (the record's removal), destroy until the CLI's exit.
 */
async function phases(sock, root, daemon, n) {
  const runs = [];
  for (let i = 0; i < n; i++) {
    await sleep(300);
    const logFrom = daemon.log().length;
    const t0 = Date.now();
    const r = spawnSync(
      DOCKER,
      ['-H', `unix://${sock}`, 'run', '--rm', '--network', 'none', 'busybox', 'true'],
      {
        env: dockerEnv,
      },
    );
    const t1 = Date.now();
    if (r.status !== 0) continue;
    await sleep(100);
    const reqs = [
      ...daemon
        .log()
        .slice(logFrom)
        .matchAll(/time="([^"]+)" level=debug msg="(\w+) ([^ "?]+)/g),
    ].map((x) => ({
      t: Date.parse(x[1]),
      what: `${x[2]} ${x[3].replace(/^\/v[\d.]+/, '').replace(/[0-9a-f]{64}/, 'ID')}`,
    }));
    const events = readFileSync(join(root, 'events.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
      .filter((e) => e.timeNano / 1e6 >= t0 && e.timeNano / 1e6 <= t1 + 100);
    const at = (a) => events.find((e) => e.Action === a)?.timeNano / 1e6;
    const req = (w) => reqs.find((x) => x.what === w)?.t;
    const first = reqs[0]?.t;
    runs.push({
      'CLI start (to its first request)': first - t0,
      'first request to create event': at('create') - first,
      'create event to start request': req('POST /containers/ID/start') - at('create'),
      'start request to start event (launch)': at('start') - req('POST /containers/ID/start'),
      'start to die (program, exit, teardown)': at('die') - at('start'),
      'die to destroy (record removed)': at('destroy') - at('die'),
      'destroy to CLI exit': t1 - at('destroy'),
      total: t1 - t0,
    });
  }
  const keys = Object.keys(runs[0] ?? {});
  return {
    runs: runs.length,
    medians: Object.fromEntries(keys.map((k) => [k, Math.round(median(runs.map((r) => r[k])) * 10) / 10])),
  };
}

async function cpuProfile(tar, n) {
  const dir = join(tmp, 'prof');
  const sock = join(tmp, 'prof.sock');
  const d = daemons.start(
    'corrald (profiled)',
    corraldArgv(sock, join(tmp, 'prof-root'), ['--cpu-prof', '--cpu-prof-dir', dir]),
    join(tmp, 'prof.log'),
  );
  await daemons.answering('corrald (profiled)', sock, d);
  daemons.docker(sock, ['load', '-i', tar]);
  for (let i = 0; i < n; i++) {
    await sleep(300);
    daemons.docker(sock, ['run', '--rm', '--network', 'none', 'busybox', 'true']);
  }
  const exited = new Promise((r) => d.child.once('exit', r));
  d.child.kill('SIGTERM');
  await exited;
  const file = listDirs(dir).find((f) => f.endsWith('.cpuprofile'));
  if (!file) return null;
  return { runs: n, ...profileSummary(JSON.parse(readFileSync(join(dir, file), 'utf8'))) };
}
