// Memory of the keeper of each container started through corrald (issue 11): N detached
// containers (`docker run -d --network none busybox sleep`), then each keeper's Rss, Pss and
// private memory (Private_Clean + Private_Dirty) from /proc/PID/smaps_rollup, beside corrald's
// own and its pool's. The keeper of a container is the record's watcherPid.
// Results: bench/results/daemon-keepers.json.
// Run as root after `npm run build`: node bench/daemon/keeper-memory.mjs [N]
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getJson, median, sleep, until } from '../lib/common.mjs';

const n = Number(process.argv[2] ?? 20);
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

const info = () => getJson(sock, '/info');

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
    const r = docker(['run', '-d', '--network', 'none', 'busybox', 'sleep', '600']);
    if (r.status !== 0) throw new Error(`run -d: ${r.stderr}`);
  }
  await sleep(3000); // keepers settle (their log writers, the first GC)
  const keepers = readdirSync(join(root, 'containers')).map((id) => {
    const r = JSON.parse(readFileSync(join(root, 'containers', id, 'container.json'), 'utf8'));
    return { id, pid: r.state.watcherPid, ...memory(r.state.watcherPid) };
  });
  const stat = (k) => ({
    median: median(keepers.map((x) => x[k])),
    min: Math.min(...keepers.map((x) => x[k])),
    max: Math.max(...keepers.map((x) => x[k])),
  });
  const result = {
    date: new Date().toISOString(),
    node: process.version,
    load: loadavg()[0],
    containers: keepers.length,
    unit: 'KiB',
    keeper: { rss: stat('rss'), pss: stat('pss'), private: stat('private'), anonymous: stat('anon') },
    corraldIdle: idle.corrald,
    corraldWithContainers: memory(daemon.pid),
    pool: { size: idle.pool.size, pssKiB: Math.round(idle.pool.pssBytes / 1024) },
  };
  writeFileSync(join(repo, 'bench/results/daemon-keepers.json'), `${JSON.stringify(result, null, 2)}\n`);
  console.log(JSON.stringify(result, null, 2));
} finally {
  let ids = [];
  try {
    ids = readdirSync(join(root, 'containers'));
  } catch {
    // none made
  }
  if (ids.length) docker(['rm', '-f', ...ids]);
  daemon.kill('SIGTERM');
  await new Promise((r) => (daemon.exitCode !== null ? r() : daemon.once('exit', r)));
  spawnSync(corral[0], [...corral.slice(1), 'network', 'down']);
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n').reverse()) {
    const mp = line.split(' ')[4];
    if (mp?.startsWith(tmp)) spawnSync('umount', ['-l', mp]);
  }
  rmSync(tmp, { recursive: true, force: true });
}
