// What the container's keeper costs an attached `run --rm busybox true`, measured
// interleaved (round after round, each command once per round, in turns) so that a shared
// machine's changing load falls on every command alike:
//   - `corral run --rm busybox true` (the CLI: its keeper started ahead in early.ts)
//   - the same run through the engine API with a keeper started ahead, and with a bare init
//     started ahead (the way before keepers): the difference is the keeper's cost
//   - podman (runc, cgroupfs, --rootfs of the same busybox) when it is installed
// Run as root after `npm run build`: node bench/engine/keeper-cost.mjs [ROUNDS]
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cgroupParent } from '../lib/common.mjs';
import { podmanRunTrue } from '../lib/podman.mjs';

const rounds = Number(process.argv[2] ?? 15);
const tmp = mkdtempSync(join(tmpdir(), 'corral-keeper-bench-'));
const root = join(tmp, 'corral');
const corral = ['node_modules/.bin/corral', '--root', root, 'run', '--rm', 'busybox', 'true'];
const commands = [
  ['corral run --rm busybox true', corral],
  ['engine run, keeper ahead', [process.execPath, 'bench/engine/run-once.mjs', 'keeper', root]],
  ['engine run, bare init ahead', [process.execPath, 'bench/engine/run-once.mjs', 'init', root]],
];
const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
let podmanCgroup = null;
if (has('podman')) {
  const rootfs = join(tmp, 'rootfs');
  mkdirSync(join(rootfs, 'bin'), { recursive: true });
  copyFileSync(
    execFileSync('sh', ['-c', 'command -v busybox'], { encoding: 'utf8' }).trim(),
    join(rootfs, 'bin', 'busybox'),
  );
  symlinkSync('busybox', join(rootfs, 'bin', 'true'));
  // Beneath this process's own cgroup, never the machine's (podman's default is /libpod_parent).
  podmanCgroup = cgroupParent(`corral-keeper-bench-${process.pid}`);
  commands.push(['podman run --rm (runc, --rootfs)', podmanRunTrue(tmp, podmanCgroup.path, rootfs)]);
}

const times = commands.map(() => []);
const once = (argv) => {
  const t = process.hrtime.bigint();
  const r = spawnSync(argv[0], argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr}`);
  return Number(process.hrtime.bigint() - t) / 1e6;
};
try {
  for (const [, argv] of commands) for (let w = 0; w < 3; w++) once(argv); // warm-up
  for (let r = 0; r < rounds; r++)
    for (let k = 0; k < commands.length; k++) {
      const i = (k + r) % commands.length;
      times[i].push(once(commands[i][1]));
    }
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const base = median(times[commands.length - 1]);
  const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  console.log(`${rounds} rounds, interleaved; load average ${load}`);
  for (const [i, [name]] of commands.entries())
    console.log(
      `${name.padEnd(34)} median ${median(times[i]).toFixed(0).padStart(5)} ms  (${(median(times[i]) / base).toFixed(2)}x the last)`,
    );
} finally {
  spawnSync('node_modules/.bin/corral', ['--root', root, 'network', 'down']);
  if (podmanCgroup) for (const problem of podmanCgroup.cleanup()) console.error(`cgroup left: ${problem}`);
  rmSync(tmp, { recursive: true, force: true });
}
