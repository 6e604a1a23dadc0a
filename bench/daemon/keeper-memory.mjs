// Memory of the keeper of each container started through corrald (issue 11): N detached
// containers (`docker run -d --network none busybox sleep`), then each keeper's Rss, Pss and
// private memory (Private_Clean + Private_Dirty) from /proc/PID/smaps_rollup, beside corrald's
// own and its pool's. The keeper of a container is the record's watcherPid: a keeper shared by
// several containers (corrald's default, keeper-host.ts) is measured once, and `perContainer`
// is what all keepers hold divided by the containers they keep. In the same run, the peer: N
// podman containers (runc, cgroupfs) and the same figures for each one's conmon.
// `--containers-per-keeper K` is handed to corrald (1: a keeper each).
// Results: bench/results/daemon-keepers.json (--busy: daemon-keepers-busy.json).
// `--busy`: each container first prints 200,000 lines (1.3 MB), then sleeps: a keeper's memory
// once it has logged, not only at rest (measured when every log has stopped growing).
// SETTLE_MS: the wait before the measure (3000; with --busy 20000, past the keeper's second
// trim, engine/src/keeper-trim.ts).
// Run as root after `npm run build`: node bench/daemon/keeper-memory.mjs [N] [--busy]
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cgroupParent, getJson, median, sleep, until } from '../lib/common.mjs';
import { podmanCommand, podmanRunFlags } from '../lib/podman.mjs';

const n = Number(process.argv.slice(2).find((a) => /^\d+$/.test(a)) ?? 20);
const busy = process.argv.includes('--busy');
const perKeeperAt = process.argv.indexOf('--containers-per-keeper');
const perKeeper = perKeeperAt > 0 ? process.argv[perKeeperAt + 1] : null;
/** What each container runs. */
const program = busy ? ['sh', '-c', 'seq 1 200000; exec sleep 600'] : ['sleep', '600'];
const repo = fileURLToPath(new URL('../..', import.meta.url));
const tmp = mkdtempSync('/var/tmp/corral-bench-keepers-');
const sock = join(tmp, 'corrald.sock');
const root = join(tmp, 'root');
const env = { ...process.env, DOCKER_HOST: `unix://${sock}`, DOCKER_CONFIG: join(tmp, 'docker-config') };
const docker = (args) => spawnSync('/usr/local/bin/docker', args, { env, encoding: 'utf8' });
const corral = [process.execPath, join(repo, 'apps/cli/bin/corral.cjs'), '--root', join(tmp, 'corral')];

/** smaps_rollup of a process, in KiB. */
function memory(pid) {
  const text = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const kb = (k) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? 0);
  return {
    rss: kb('Rss'),
    pss: kb('Pss'),
    private: kb('Private_Clean') + kb('Private_Dirty'),
    anon: kb('Anonymous'),
  };
}

/**
 * Where a process's private memory is (KiB), by mapping: each file by name, anonymous memory
 * as [heap] (malloc's), [stack], and the other anonymous mappings by size (V8's pages and
 * thread stacks are among them).
 */
function breakdown(pid) {
  const out = {};
  let name = null;
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \d+\s*(.*)$/.exec(line);
    if (head) {
      const size = (Number.parseInt(head[2], 16) - Number.parseInt(head[1], 16)) / 1024;
      name = head[3] || `anon ${size >= 1024 ? `${Math.round(size / 1024)} MiB` : `${size} KiB`}`;
      name = name.replace(/^.*\/(node_modules|packages|apps)\//, '$1/');
      continue;
    }
    const m = /^Private_(Clean|Dirty):\s+(\d+) kB/.exec(line);
    if (m && name) out[name] = (out[name] ?? 0) + Number(m[2]);
  }
  return Object.fromEntries(
    Object.entries(out)
      .filter(([, v]) => v > 0)
      .sort((a, b) => b[1] - a[1]),
  );
}

const info = () => getJson(sock, '/info');
const stat = (xs, k) => ({
  median: median(xs.map((x) => x[k])),
  min: Math.min(...xs.map((x) => x[k])),
  max: Math.max(...xs.map((x) => x[k])),
});
/** What the processes hold in all, per container they keep (KiB). */
const perContainer = (xs, containers) => {
  const sum = (k) => xs.reduce((a, x) => a + x[k], 0);
  return {
    rss: Math.round(sum('rss') / containers),
    pss: Math.round(sum('pss') / containers),
    private: Math.round(sum('private') / containers),
  };
};
const figures = (xs) => ({
  rss: stat(xs, 'rss'),
  pss: stat(xs, 'pss'),
  private: stat(xs, 'private'),
  anonymous: stat(xs, 'anon'),
});
const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const cgroups = cgroupParent(`corral-bench-keepers-${process.pid}`);
const podman = podmanCommand(tmp);
let podmanOk = false;

/**
 * Node's own floor in this run, beside the keepers: an idle `node` with a keeper's flags and
 * environment, and the same with koffi's native module loaded (as a keeper loads it).
 */
async function nodeFloor() {
  const { NODE_EXTRA_CA_CERTS: _, ...env } = process.env;
  const koffi = join(repo, 'node_modules/.pnpm/node_modules/koffi/build/koffi/linux_x64/koffi.node');
  const idle = 'setInterval(() => {}, 1e9)';
  const out = {};
  for (const [name, code] of [
    ['bare', idle],
    ['withKoffi', `require(${JSON.stringify(koffi)}).load('libc.so.6'); ${idle}`],
  ]) {
    const c = spawn(process.execPath, ['--v8-pool-size=1', '--max-semi-space-size=1', '-e', code], {
      stdio: 'ignore',
      env: { ...env, UV_THREADPOOL_SIZE: '1' },
    });
    await sleep(3000);
    out[name] = memory(c.pid);
    c.kill();
  }
  return out;
}

/** Until no container's json-file log has grown for 2 s. */
async function logsStill() {
  const sizes = () =>
    readdirSync(join(root, 'containers'))
      .map(
        (id) =>
          statSync(join(root, 'containers', id, `${id}-json.log`), { throwIfNoEntry: false })?.size ?? 0,
      )
      .join(',');
  let last = '';
  for (;;) {
    const now = sizes();
    if (now === last) return;
    last = now;
    await sleep(2000);
  }
}

/** N podman containers like corrald's, and each one's conmon (null without podman). */
function conmons(tar) {
  if (!has('podman') || !has('conmon')) return null;
  podmanOk = spawnSync(podman[0], [...podman.slice(1), 'load', '-i', tar]).status === 0;
  if (!podmanOk) return null;
  const run = [...podman, 'run', '-d', ...podmanRunFlags(`${cgroups.path}/podman`), '--network', 'none'];
  for (let i = 0; i < n; i++) {
    const r = spawnSync(run[0], [...run.slice(1), '--log-driver', 'k8s-file', 'busybox', ...program], {
      encoding: 'utf8',
    });
    if (r.status !== 0) throw new Error(`podman run -d: ${r.stderr}`);
  }
  const ps = spawnSync(podman[0], [...podman.slice(1), 'ps', '-q'], { encoding: 'utf8' }).stdout.split('\n');
  return ps.filter(Boolean).map((id) => {
    const r = spawnSync(podman[0], [...podman.slice(1), 'inspect', '--format', '{{.State.ConmonPid}}', id], {
      encoding: 'utf8',
    });
    const pid = Number(r.stdout.trim());
    return { id, pid, ...memory(pid) };
  });
}

const daemon = spawn(
  process.execPath,
  [
    join(repo, 'apps/daemon/bin/corrald.js'),
    '-H',
    `unix://${sock}`,
    '--data-root',
    root,
    '--exec-root',
    join(tmp, 'exec'),
    '--pidfile',
    join(tmp, 'pid'),
    ...(perKeeper ? ['--containers-per-keeper', perKeeper] : []),
  ],
  { stdio: 'ignore' },
);
try {
  spawnSync(corral[0], [...corral.slice(1), 'run', '--rm', '--network', 'none', 'busybox', 'true']);
  spawnSync(corral[0], [...corral.slice(1), 'save', '-o', join(tmp, 'busybox.tar'), 'busybox']);
  await until(() => docker(['version']).status === 0, 'corrald', 60_000);
  if (docker(['load', '-i', join(tmp, 'busybox.tar')]).status !== 0) throw new Error('load failed');
  await until(async () => (await info()).KeeperPool?.ready > 0, 'the pool', 60_000);
  await sleep(2000);
  const idle = { corrald: memory(daemon.pid), pool: (await info()).KeeperPool };
  for (let i = 0; i < n; i++) {
    const r = docker(['run', '-d', '--network', 'none', 'busybox', ...program]);
    if (r.status !== 0) throw new Error(`run -d: ${r.stderr}`);
  }
  if (busy) await logsStill();
  // Keepers settle (their log writers, the first GC; after output, V8's memory reducer).
  const settle = Number(process.env.SETTLE_MS ?? (busy ? 20_000 : 3000));
  await sleep(settle);
  const kept = new Map(); // keeper pid -> containers
  for (const id of readdirSync(join(root, 'containers'))) {
    const r = JSON.parse(readFileSync(join(root, 'containers', id, 'container.json'), 'utf8'));
    kept.set(r.state.watcherPid, (kept.get(r.state.watcherPid) ?? 0) + 1);
  }
  const keepers = [...kept].map(([pid, containers]) => ({ pid, containers, ...memory(pid) }));
  const peers = conmons(join(tmp, 'busybox.tar'));
  const floor = await nodeFloor();
  const result = {
    date: new Date().toISOString(),
    node: process.version,
    load: loadavg()[0],
    containers: n,
    containersPerKeeper: perKeeper ?? 'default',
    keeperProcesses: keepers.map(({ pid, containers }) => ({ pid, containers })),
    program: program.join(' '),
    settleMs: settle,
    unit: 'KiB',
    perContainer: perContainer(keepers, n),
    keeper: figures(keepers),
    // The keeper with the most private memory, and where it is.
    keeperPrivateByMapping: breakdown(keepers.reduce((a, b) => (b.private > a.private ? b : a)).pid),
    conmon: peers
      ? {
          version: spawnSync('conmon', ['--version'], { encoding: 'utf8' }).stdout.split('\n')[0],
          containers: peers.length,
          perContainer: perContainer(peers, peers.length),
          ...figures(peers),
          privateByMapping: breakdown(peers[0].pid),
        }
      : null,
    nodeIdle: floor,
    corraldIdle: idle.corrald,
    corraldWithContainers: memory(daemon.pid),
    pool: { size: idle.pool.size, pssKiB: Math.round(idle.pool.pssBytes / 1024) },
  };
  const name = `daemon-keepers${busy ? '-busy' : ''}${perKeeper ? `-per-keeper-${perKeeper}` : ''}`;
  writeFileSync(join(repo, `bench/results/${name}.json`), `${JSON.stringify(result, null, 2)}\n`);
  console.log(JSON.stringify(result, null, 2));
} finally {
  let ids = [];
  try {
    ids = readdirSync(join(root, 'containers'));
  } catch {
    // none made
  }
  if (ids.length) docker(['rm', '-f', ...ids]);
  if (podmanOk) spawnSync(podman[0], [...podman.slice(1), 'rm', '-af', '-t', '0']);
  daemon.kill('SIGTERM');
  await new Promise((r) => (daemon.exitCode !== null ? r() : daemon.once('exit', r)));
  spawnSync(corral[0], [...corral.slice(1), 'network', 'down']);
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n').reverse()) {
    const mp = line.split(' ')[4];
    if (mp?.startsWith(tmp)) spawnSync('umount', ['-l', mp]);
  }
  const problems = cgroups.cleanup();
  if (problems.length) console.error(`cgroups left: ${problems.join('; ')}`);
  rmSync(tmp, { recursive: true, force: true });
}
