// The throughput of attached output (issue 11): the same docker CLI (/usr/local/bin/docker)
// runs three programs with a lot of output against corrald and, when /usr/sbin/dockerd is
// there, against a dockerd this script starts (private socket, data root and exec root,
// --iptables=false --bridge=none, cgroup parent beneath our own), alternating, and checks that
// every byte arrived. Lines/s and MB/s from the median wall time of each.
// Results: bench/results/daemon-output.json.
// Run as root after `npm run build`: node bench/daemon/output.mjs [RUNS]
// With CPU_PROF=DIR, corrald runs under --cpu-prof (its profile lands in DIR when it stops).
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cgroupParent, median } from '../lib/common.mjs';
import { Daemons } from '../lib/daemons.mjs';

const runs = Number(process.argv[2] ?? 3);
const repo = fileURLToPath(new URL('../..', import.meta.url));
const tmp = mkdtempSync('/var/tmp/corral-bench-output-');
const corral = [process.execPath, join(repo, 'apps/cli/bin/corral.cjs'), '--root', join(tmp, 'corral')];
const cgroups = cgroupParent(`corral-bench-output-${process.pid}`);
const env = { ...process.env, DOCKER_CONFIG: join(tmp, 'docker-config') };
delete env.DOCKER_HOST;
delete env.DOCKER_CONTEXT;
const daemons = new Daemons(env);

const programs = [
  { name: 'seq 1 200000', cmd: 'seq 1 200000', lines: 200000 },
  { name: '50 MB in one line', cmd: 'head -c 50000000 /dev/zero | tr "\\0" x', lines: 1 },
  { name: '20 MB of /dev/urandom', cmd: 'head -c 20000000 /dev/urandom' },
];
// What each must print, to check that every byte arrived (the random one: its length).
const expected = [
  Buffer.from(`${Array.from({ length: 200000 }, (_, i) => i + 1).join('\n')}\n`),
  Buffer.alloc(50_000_000, 'x'),
  null,
];

const docker = (sock, args, opts = {}) =>
  daemons.docker(sock, args, { encoding: 'buffer', maxBuffer: 1 << 28, ...opts });

async function cleanup() {
  await daemons.stop();
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n').reverse()) {
    const mp = line.split(' ')[4];
    if (mp?.startsWith(tmp)) spawnSync('umount', ['-l', mp]);
  }
  const problems = cgroups.cleanup();
  if (problems.length) console.error(`cgroups left: ${problems.join('; ')}`);
  daemons.removeRunDirs();
  rmSync(tmp, { recursive: true, force: true });
}

mkdirSync(env.DOCKER_CONFIG);
writeFileSync(join(env.DOCKER_CONFIG, 'config.json'), '{}\n');
try {
  execFileSync(corral[0], [...corral.slice(1), 'run', '--rm', '--network', 'none', 'busybox', 'true']);
  const tar = join(tmp, 'busybox.tar');
  execFileSync(corral[0], [...corral.slice(1), 'save', '-o', tar, 'busybox']);
  const targets = [];
  const sock = join(tmp, 'corrald.sock');
  const prof = process.env.CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.CPU_PROF] : [];
  const c = daemons.start('corrald', [
    process.execPath,
    ...prof,
    join(repo, 'apps/daemon/bin/corrald.js'),
    '-H',
    `unix://${sock}`,
    '--data-root',
    join(tmp, 'corrald'),
    '--exec-root',
    join(tmp, 'corrald-exec'),
    '--pidfile',
    join(tmp, 'corrald.pid'),
  ]);
  await daemons.answering('corrald', sock, c);
  targets.push({ name: 'docker → corrald', sock });
  const dsock = await daemons.startDockerd(
    tmp,
    `${cgroups.path}/dockerd`,
    `corral-bench-output-${process.pid}`,
  );
  if (dsock) targets.push({ name: 'docker → dockerd', sock: dsock });
  for (const t of targets)
    if (docker(t.sock, ['load', '-i', tar]).status !== 0)
      throw new Error(`docker load into ${t.name} failed`);

  const results = {};
  console.log(
    `median of ${runs} runs each (load ${loadavg()[0].toFixed(1)}); docker run --rm --network none busybox …`,
  );
  for (const [i, p] of programs.entries()) {
    const times = new Map(targets.map((t) => [t.name, []]));
    const bad = {};
    let bytes = 0;
    for (let k = 0; k < runs; k++)
      for (const t of targets) {
        const t0 = process.hrtime.bigint();
        const r = docker(t.sock, ['run', '--rm', '--network', 'none', 'busybox', 'sh', '-c', p.cmd]);
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        const whole = expected[i] ? r.stdout.equals(expected[i]) : r.stdout.length === 20_000_000;
        if (r.status !== 0 || !whole)
          bad[t.name] = `exit ${r.status}, ${r.stdout.length} bytes${whole ? '' : ' (not what was printed)'}`;
        else times.get(t.name).push(ms);
        bytes = r.stdout.length;
      }
    // The floor: the same program with its output counted inside (`| wc -c`), through corrald.
    const floor = [];
    for (let k = 0; k < runs; k++) {
      const t0 = process.hrtime.bigint();
      docker(targets[0].sock, [
        'run',
        '--rm',
        '--network',
        'none',
        'busybox',
        'sh',
        '-c',
        `${p.cmd} | wc -c`,
      ]);
      floor.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    results[p.name] = { 'program alone (| wc -c inside)': { medianMs: Math.round(median(floor)) } };
    console.log(`${p.name.padEnd(24)} ${'program alone'.padEnd(18)} ${Math.round(median(floor))} ms`);
    for (const [name, ts] of times) {
      const m = median(ts);
      const lines = p.lines ?? null;
      results[p.name][name] = {
        medianMs: Math.round(m),
        runs: ts.length,
        MBps: Math.round((bytes / 1e6 / (m / 1000)) * 10) / 10,
        ...(lines && lines > 1 ? { linesPerS: Math.round(lines / (m / 1000)) } : {}),
        ...(bad[name] ? { failed: bad[name] } : {}),
      };
      const x = results[p.name][name];
      console.log(
        `${p.name.padEnd(24)} ${name.padEnd(18)} ${bad[name] ? `FAILED ${bad[name]}` : `${x.medianMs} ms, ${x.MBps} MB/s${x.linesPerS ? `, ${x.linesPerS} lines/s` : ''}`}`,
      );
    }
  }
  writeFileSync(
    join(repo, 'bench/results/daemon-output.json'),
    `${JSON.stringify({ date: new Date().toISOString(), node: process.version, runs, load: loadavg()[0], results }, null, 2)}\n`,
  );
} finally {
  await cleanup();
}
