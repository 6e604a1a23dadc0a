// Memory of the keeper (packages/engine/src/keeper.ts) that each container gets: RSS, PSS
// (shared pages split among the processes that map them) and private anonymous memory, over
// N detached containers. Run as root after `npm run build`:
//   node bench/engine/watcher-memory.mjs [N]
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const n = Number(process.argv[2] ?? 5);
const root = mkdtempSync(join(tmpdir(), 'corral-bench-'));
const corral = (...args) =>
  execFileSync('node_modules/.bin/corral', ['--root', root, ...args], { encoding: 'utf8' }).trim();
const kib = (text, key) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? 0);

try {
  for (let i = 0; i < n; i++) corral('run', '-d', '--network', 'none', 'busybox', 'sleep', '300');
  // Settled: a keeper's heap after its start-up garbage is collected.
  await new Promise((r) => setTimeout(r, 3000));
  const keepers = readdirSync(join(root, 'containers')).map(
    (id) => JSON.parse(readFileSync(join(root, 'containers', id, 'container.json'), 'utf8')).state.watcherPid,
  );
  const rows = keepers.map((p) => {
    const r = readFileSync(`/proc/${p}/smaps_rollup`, 'utf8');
    return { rss: kib(r, 'Rss'), pss: kib(r, 'Pss'), anon: kib(r, 'Anonymous') };
  });
  const avg = (k) => (rows.reduce((s, r) => s + r[k], 0) / rows.length / 1024).toFixed(1);
  console.log(
    `keepers: ${rows.length}; per keeper: RSS ${avg('rss')} MiB, PSS ${avg('pss')} MiB, anonymous ${avg('anon')} MiB`,
  );
} finally {
  corral('rm', '-f', ...readdirSync(join(root, 'containers')));
  rmSync(root, { recursive: true, force: true });
}
