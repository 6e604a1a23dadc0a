import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Cleanups, mountsUnder, until } from '@corral/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { containerDirs, type Daemon, startDaemon } from './daemon.js';

// 50 concurrent docker run --rm through one corrald (the load): every run prints its
// line and exits 0, and nothing is left: no container folder, no mount under the data root, no
// cgroup named after a container, no process in one, and corrald's own children back to what
// they were (its keepers ended).
const RUNS = 50;
const c = new Cleanups();
let d: Daemon;
let dir: string;
beforeAll(async () => {
  d = await startDaemon(c);
  dir = c.tempDir('corrald-load');
  await d.docker(['run', '--rm', '--network', 'none', 'busybox', 'true']); // the embedded image made once
});
afterAll(() => c.run());

/** Cgroup folders (any v1 controller, a few levels down) whose name holds one of `ids`. */
function cgroupsOf(ids: string[]): string[] {
  const found: string[] = [];
  const walk = (p: string, depth: number) => {
    let entries: string[];
    try {
      entries = readdirSync(p, { withFileTypes: true })
        .filter((e) => e.isDirectory())
        .map((e) => e.name);
    } catch {
      return;
    }
    for (const name of entries) {
      if (ids.some((id) => name.includes(id))) found.push(join(p, name));
      else if (depth < 5) walk(join(p, name), depth + 1);
    }
  };
  for (const controller of ['pids', 'memory', 'cpu', 'freezer']) walk(join('/sys/fs/cgroup', controller), 0);
  return found;
}

/** Processes on the machine in a cgroup named after one of `ids`. */
function processesOf(ids: string[]): number[] {
  const pids: number[] = [];
  for (const p of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      const cg = readFileSync(`/proc/${p}/cgroup`, 'utf8');
      if (ids.some((id) => cg.includes(id))) pids.push(Number(p));
    } catch {
      // ended meanwhile
    }
  }
  return pids;
}

/** corrald's direct children (its keepers, and what its pool parks). */
function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

describe('concurrent runs through one corrald', () => {
  it(`${RUNS} docker run --rm all succeed and leave nothing behind`, async () => {
    const before = childrenOf(d.child.pid!).length;
    const runs = await Promise.all(
      Array.from({ length: RUNS }, (_, i) =>
        d.docker([
          'run',
          '--rm',
          '--cidfile',
          join(dir, `cid${i}`),
          '--network',
          'none',
          'busybox',
          'echo',
          `run${i}`,
        ]),
      ),
    );
    expect(runs.map((r) => [r.status, r.out, r.stderr])).toEqual(runs.map((_, i) => [0, `run${i}`, '']));
    const ids = runs.map((_, i) => readFileSync(join(dir, `cid${i}`), 'utf8').trim());
    expect(new Set(ids).size).toBe(RUNS);
    expect(containerDirs(d.root)).toEqual([]);
    expect(mountsUnder(d.root)).toEqual([]);
    expect(cgroupsOf(ids)).toEqual([]);
    expect(processesOf(ids)).toEqual([]);
    // Keepers of --rm runs end once they have removed their containers (the pool refills).
    await until(
      () => childrenOf(d.child.pid!).length <= before,
      `corrald's children back to ${before}`,
      20_000,
    );
  });
});
