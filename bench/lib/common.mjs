// Helpers the benchmarks share: quoting for hyperfine, medians, polling, a cgroup parent
// beneath our own, a process's children, JSON from a unix socket.
import { existsSync, readdirSync, readFileSync, rmdirSync } from 'node:fs';
import { request } from 'node:http';
import { join, posix } from 'node:path';

const q = (a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);
export const sh = (argv) => argv.map(q).join(' ');
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function median(xs) {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  return s.length ? (s[(s.length - 1) >> 1] + s[s.length >> 1]) / 2 : Number.NaN;
}

export async function until(check, what, ms) {
  const end = Date.now() + ms;
  for (;;) {
    if (await check()) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

/**
 * A cgroup path beneath the deepest of ours (every hierarchy), for the daemons' containers.
 * `cleanup` removes what was made under it (children first) and the ancestors it made.
 */
export function cgroupParent(name) {
  const own = readFileSync('/proc/self/cgroup', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(':').slice(2).join(':'));
  const path = posix.join(
    own.reduce((a, b) => (b.length > a.length ? b : a), '/'),
    name,
  );
  const hierarchies = readdirSync('/sys/fs/cgroup').map((h) => join('/sys/fs/cgroup', h));
  const ancestors = (h) => {
    const out = [];
    for (let d = posix.dirname(path); d !== '/'; d = posix.dirname(d)) out.push(join(h, d));
    return out;
  };
  const existed = new Set(hierarchies.flatMap(ancestors).filter((d) => existsSync(d)));
  return {
    path,
    cleanup() {
      const problems = [];
      const rmTree = (d) => {
        if (!existsSync(d)) return;
        for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) rmTree(join(d, e.name));
        try {
          rmdirSync(d);
        } catch (e) {
          problems.push(`${d}: ${e.message}`);
        }
      };
      for (const h of hierarchies) {
        rmTree(join(h, path));
        for (const d of ancestors(h))
          if (!existed.has(d) && existsSync(d))
            try {
              rmdirSync(d);
            } catch (e) {
              problems.push(`${d}: ${e.message}`);
            }
      }
      return problems;
    },
  };
}

/** The pids whose parent is `ppid`. */
export function childrenOf(ppid) {
  const out = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === ppid) out.push(Number(e));
    } catch {
      // gone
    }
  }
  return out;
}

/** GET of a JSON answer on a unix socket (corrald's /info); null when it cannot be had. */
export async function getJson(socketPath, path) {
  for (let i = 0; i < 3; i++) {
    try {
      return await getOnce(socketPath, path);
    } catch (e) {
      console.error(`GET ${path} on ${socketPath}: ${e.message}`);
      await sleep(500);
    }
  }
  return null;
}

function getOnce(socketPath, path) {
  return new Promise((resolve, reject) => {
    request({ socketPath, path, headers: { Connection: 'close' } }, (res) => {
      let t = '';
      res.on('data', (d) => {
        t += d;
      });
      res.on('end', () => {
        try {
          resolve(JSON.parse(t));
        } catch (e) {
          reject(e);
        }
      });
    })
      .on('error', reject)
      .end();
  });
}
