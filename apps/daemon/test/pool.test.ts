import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmdirSync,
  writeFileSync,
} from 'node:fs';
import { getPriority } from 'node:os';
import { join } from 'node:path';
import { procStartTime } from '@corral/sys';
import { Cleanups, exec, findCgroupDirs, until } from '@corral/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { CORRALD, type Daemon, LEAK_FD, startDaemon } from './daemon.js';

// corrald's pool of keepers started ahead (--pool-size), handed to a container at its start:
// fast keepers that make their container themselves (the default), or, with --pool-inits,
// keepers parked with their init started. What a parked keeper or init holds must be nothing a
// container could reach, and none may outlive corrald, SIGKILLed or not.
const c = new Cleanups();
afterAll(() => c.run());

/** A process still there (by start time), not a zombie waiting for a late reaper. */
function alive(p: { pid: number; startTime: number }): boolean {
  try {
    const stat = readFileSync(`/proc/${p.pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z' && procStartTime(p.pid) === p.startTime;
  } catch {
    return false;
  }
}

function childrenOf(ppid: number): number[] {
  const out: number[] = [];
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

/** An fd's flags (O_CLOEXEC is 0o2000000). */
const flagsOf = (pid: number, fd: number) =>
  Number.parseInt(/^flags:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'))![1], 8);

const cmdline = (pid: number) => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
  } catch {
    return '';
  }
};

/**
 * The pool's kinds: the flags that start corrald with each, whether it parks inits, and whether
 * its fast keepers are connections to a shared keeper (the default; one keeper of their own is
 * parked beside them, for a container that needs an init).
 */
interface Kind {
  kind: string;
  flags: string[];
  inits: boolean;
  shared: boolean;
}
const SHARED: Kind = { kind: 'shared keepers', flags: [], inits: false, shared: true };
const FAST: Kind = {
  kind: 'fast keepers',
  flags: ['--containers-per-keeper', '1'],
  inits: false,
  shared: false,
};
const POOL_INITS: Kind = { kind: '--pool-inits', flags: ['--pool-inits'], inits: true, shared: false };
const KINDS: Kind[] = [FAST, POOL_INITS];
const INITS = ['--pool-inits'];

/**
 * corrald's parked keepers and their inits (with --pool-inits), once `size` are ready; with a
 * shared keeper, the shared one (its `size` connections) and the one of its own.
 */
async function parked(d: Daemon, size: number, { inits, shared }: Pick<Kind, 'inits' | 'shared'>) {
  const keepersNow = () => childrenOf(d.child.pid!).filter((p) => cmdline(p).includes('keeper'));
  const processes = shared ? 2 : size;
  // A finished --rm container's keeper ends a moment after the removal it reported (it empties
  // the container's folder from the trash): waited for, so only parked ones are counted.
  await until(
    async () =>
      (await d.api('GET', '/info')).json().KeeperPool?.ready === size + (shared ? 1 : 0) &&
      keepersNow().length === processes &&
      keepersNow().every((k) => !shared || cmdline(k).includes(' host ') || childrenOf(k).length === 0),
    'the pool to fill, and no other keeper',
  );
  const keepers = keepersNow();
  const initPids = keepers.flatMap((k) => childrenOf(k));
  expect(keepers).toHaveLength(processes);
  if (shared) expect(keepers.filter((k) => cmdline(k).includes(' host '))).toHaveLength(1);
  // A fast keeper starts nothing while it waits.
  expect(initPids).toHaveLength(inits ? size : 0);
  expect(initPids.every((p) => cmdline(p).includes('init'))).toBe(true);
  return {
    keepers,
    inits: initPids,
    all: [...keepers, ...initPids].map((pid) => ({ pid, startTime: procStartTime(pid)! })),
  };
}

// Run as the container's program: every task it can see, every fd of theirs, their cwd and
// root, tried against the canary (a file and its folder on the host).
const ATTACK = `
n=0
for p in /proc/[0-9]* /proc/self /proc/1; do
  [ -d $p ] || continue
  n=$((n+1))
  for f in $p/fd/*; do
    echo "fd $f -> $(readlink $f 2>/dev/null)"
    if [ -d $f ]; then cat $f/canary 2>/dev/null && echo "LEAK dir fd $f"; fi
    if [ -f $f ]; then head -c 100 $f 2>/dev/null | grep -q SECRET && echo "LEAK file fd $f"; fi
  done
  echo "task $p cwd=$(readlink $p/cwd) root=$(readlink $p/root)"
  cat $p/cwd/canary 2>/dev/null && echo "LEAK cwd $p"
  cat $p/root$CANARY 2>/dev/null && echo "LEAK root $p"
done
echo "tasks seen: $n"
`;

/** A process's v1 cgroups (hierarchy: path), from /proc/PID/cgroup. */
function cgroupsOf(pid: number): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of readFileSync(`/proc/${pid}/cgroup`, 'utf8').trim().split('\n')) {
    const [, hierarchy, path] = line.split(':');
    if (hierarchy) out.set(hierarchy, path);
  }
  return out;
}

/** The folders of a cgroup path in each v1 hierarchy where they exist. */
function cgroupDirs(name: string): string[] {
  return findCgroupDirs(
    (n) => n === name,
    (h) => h !== 'unified',
  );
}

/** The parking cgroup of each parked init, once each waits in one (on cgroup v1). */
async function parkings(inits: number[]): Promise<string[]> {
  const nameOf = (pid: number) => {
    const paths = [...cgroupsOf(pid).values()];
    const names = new Set(paths.map((p) => /\/(corral-pool-[^/]+)$/.exec(p)?.[1]));
    return names.size === 1 ? [...names][0] : undefined;
  };
  await until(() => inits.every((pid) => nameOf(pid)), 'the parked inits to wait in their cgroups');
  return inits.map((pid) => nameOf(pid)!);
}

/** Removes the folders of the cgroups named `prefix`... in every hierarchy, deepest first. */
function removeCgroups(prefix: string): void {
  const found = findCgroupDirs(
    (n) => n.startsWith(prefix),
    (h) => h !== 'unified',
  );
  for (const dir of found) {
    try {
      rmdirSync(dir);
    } catch {
      // holds a process: not a leftover
    }
  }
}

/** The container's cgroup is `corral-ID` beneath corrald's own in every v1 hierarchy. */
function expectContainerCgroup(d: Daemon, pid: number, id: string): void {
  const own = cgroupsOf(d.child.pid!);
  for (const [h, path] of cgroupsOf(pid)) {
    if (h === '') continue; // the v2 mount of this hybrid host: no controllers, not used
    expect(path).toBe(`${own.get(h) === '/' ? '' : own.get(h)}/corral-${id}`);
  }
}

/** The limits the tests below set (-m 32m, --pids-limit 20), as the container's cgroup has them. */
function expectLimits(id: string): void {
  const dirs = cgroupDirs(`corral-${id}`);
  const file = (f: string) => readFileSync(join(dirs.find((x) => existsSync(join(x, f)))!, f), 'utf8').trim();
  expect([file('memory.limit_in_bytes'), file('pids.max')]).toEqual([String(32 << 20), '20']);
}

/** The memory limit the tests below set, without swap beyond it. */
const MEMORY_32M = ['--network', 'none', '-m', '32m', '--memory-swap', '32m'];

/** Runs `cmd` in the background with the limits expectLimits checks; its id. */
async function runLimited(d: Daemon, cmd: string[]): Promise<string> {
  return (await d.must(['run', '-d', ...MEMORY_32M, '--pids-limit', '20', 'busybox', ...cmd])).out;
}

/** 64 MiB in one buffer in a pooled container of 32 (`how`: --rm, or --name NAME): OOM-killed. */
async function runOverLimit(d: Daemon, how: string[]) {
  const r = await d.docker([
    'run',
    ...how,
    ...MEMORY_32M,
    'busybox',
    'dd',
    'if=/dev/zero',
    'of=/dev/null',
    'bs=64M',
    'count=1',
  ]);
  expect(r.status).toBe(137);
}

describe('corrald --pool-size', () => {
  it.each([SHARED, ...KINDS])('reports its pool and its memory in /info ($kind)', async (kind) => {
    const d = await startDaemon(c, kind.flags);
    const pool = await parked(d, 2, kind); // the default size
    const info = (await d.api('GET', '/info')).json();
    expect(info.KeeperPool).toMatchObject({ size: 2, ready: kind.shared ? 3 : 2 });
    expect(info.KeeperPool.pssBytes).toBeGreaterThan(4 << 20);
    expect(info.DaemonMemory.RssBytes).toBeGreaterThan(10 << 20);
    expect(info.DaemonMemory.PssBytes).toBeGreaterThan(0);
    // A run takes a parked keeper: the pool says so and fills again.
    const r = await d.docker(['run', '--rm', '--network', 'none', 'busybox', 'echo', 'pooled']);
    expect([r.status, r.stdout]).toEqual([0, 'pooled\n']);
    const after = await parked(d, 2, kind);
    expect((await d.api('GET', '/info')).json().KeeperPool.hits).toBe(1);
    // The shared keeper kept it: a connection more, no keeper more.
    expect(after.keepers.filter((k) => pool.keepers.includes(k))).toHaveLength(kind.shared ? 2 : 1);
    // A terminal's container is served by a parked keeper too, and so are those a fast keeper
    // starts an init for (--init, a kept stdin).
    const t = await d.docker(['run', '--rm', '-t', '--network', 'none', 'busybox', 'sh', '-c', 'tty']);
    expect([t.status, t.stdout.trim()]).toEqual([0, '/dev/pts/0']);
    const i = await d.docker(['run', '--rm', '--init', '--network', 'none', 'busybox', 'echo', 'init']);
    expect([i.status, i.stdout]).toEqual([0, 'init\n']);
    const id = (await d.must(['run', '-d', '-i', '--network', 'none', 'busybox', 'cat'])).out;
    expect((await d.must(['inspect', '-f', '{{.State.Running}}', id])).out).toBe('true');
    await d.must(['rm', '-f', id]);
    expect((await d.api('GET', '/info')).json().KeeperPool).toMatchObject({ hits: 4, misses: 0 });
  });

  it.each(KINDS)(
    'parks keepers and inits nicer, and gives a pooled container its own niceness back ($kind)',
    async (kind) => {
      const d = await startDaemon(c, kind.flags);
      const pool = await parked(d, 2, kind);
      const own = getPriority(); // corrald's, inherited from us
      const niceOf = (pid: number) =>
        Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')[16]);
      for (const pid of [...pool.keepers, ...pool.inits]) expect(niceOf(pid)).toBe(Math.min(19, own + 10));
      // A keeper's session is an autogroup of its own, which the scheduler weighs as a whole
      // against corrald's: the group is nicer too, or the threads' niceness counts for nothing.
      // corrald's file is empty where it is in the root group (a session no setsid made, as
      // under CI's agent): its tasks weigh as nice 0 against each group.
      const groupOf = (pid: number) =>
        /^(\S+) nice (-?\d+)/.exec(readFileSync(`/proc/${pid}/autogroup`, 'utf8'));
      const ownGroup = groupOf(d.child.pid!);
      const ownGroupNice = ownGroup ? Number(ownGroup[2]) : 0;
      for (const k of pool.keepers) {
        expect(groupOf(k)![1]).not.toBe(ownGroup?.[1]);
        expect(Number(groupOf(k)![2])).toBe(Math.min(19, ownGroupNice + 10));
      }
      for (const i of pool.inits) expect(pool.keepers.map((k) => groupOf(k)![1])).toContain(groupOf(i)![1]);
      // The program (the pooled init's main thread exec'd, or the fast keeper's child) and a
      // child of it, as without a pool.
      const r = await d.docker([
        'run',
        '--rm',
        '--network',
        'none',
        'busybox',
        'sh',
        '-c',
        'sed "s/.*) //" /proc/1/stat | cut -d" " -f17; awk "{print \\$19}" /proc/self/stat; sed "s/.* nice //" /proc/1/autogroup',
      ]);
      const [status, niceInit, niceChild, groupNice] = [r.status, ...r.stdout.split('\n')];
      expect([status, niceInit, niceChild]).toEqual([0, `${own}`, `${own}`]);
      // Its autogroup is as nice as corrald's again.
      expect(groupNice).toBe(`${ownGroupNice}`);
      expect((await d.api('GET', '/info')).json().KeeperPool.hits).toBe(1);
    },
  );

  it('parks each loaded init in a cgroup of its own, which a pooled start renames into the container cgroup, limits applied', async () => {
    const d = await startDaemon(c, INITS);
    const pool = await parked(d, 2, POOL_INITS);
    const names = await parkings(pool.inits);
    expect(new Set(names).size).toBe(2);
    // The keepers stay in corrald's cgroups: only the inits, the containers to be, are parked.
    for (const k of pool.keepers) expect(cgroupsOf(k)).toEqual(cgroupsOf(d.child.pid!));
    const id = await runLimited(d, ['sh', '-c', 'cat /proc/self/cgroup; sleep 60']);
    const pid = Number((await d.must(['inspect', '-f', '{{.State.Pid}}', id])).out);
    expect(pool.inits).toContain(pid);
    const taken = names[pool.inits.indexOf(pid)];
    // Its cgroup is the container's in every hierarchy, by the container's name; the parking
    // one is gone (renamed), the other init still waits in its own.
    expectContainerCgroup(d, pid, id);
    expect(cgroupDirs(taken)).toEqual([]);
    expect(cgroupDirs(names.find((n) => n !== taken)!).length).toBeGreaterThan(0);
    expectLimits(id);
    // The program saw the container's path from its first line, not the pool's.
    const logs = await d.must(['logs', id]);
    expect(logs.stdout).toContain(`/corral-${id}\n`);
    expect(logs.stdout).not.toContain('corral-pool');
    await d.must(['rm', '-f', id]);
    expect(cgroupDirs(`corral-${id}`)).toEqual([]);
    // The limit holds.
    await runOverLimit(d, ['--rm']);
    // A container placed beneath a parent of its own takes its init out of the parking cgroup
    // (no rename across parents), which then goes.
    const left = await parkings((await parked(d, 2, POOL_INITS)).inits);
    const parent = `corral-test-parent-${process.pid}`;
    c.add(() => removeCgroups(parent));
    const placed = await d.docker([
      'run',
      '--rm',
      '--network',
      'none',
      '--cgroup-parent',
      parent,
      'busybox',
      'sh',
      '-c',
      'cat /proc/self/cgroup',
    ]);
    expect(placed.status).toBe(0);
    expect(placed.stdout).toMatch(new RegExp(`:memory:.*/${parent}/corral-[0-9a-f]{64}\n`));
    expect(placed.stdout).not.toContain('corral-pool');
    await until(
      () => left.filter((n) => cgroupDirs(n).length === 0).length === 1,
      'the parking cgroup to go',
    );
    expect((await d.api('GET', '/info')).json().KeeperPool.hits).toBe(3);
  });

  it.each([SHARED, FAST])(
    "gives each parked fast keeper an empty cgroup, which its container's becomes by a rename, limits applied ($kind)",
    async (kind) => {
      const d = await startDaemon(c, kind.flags);
      await parked(d, 2, kind);
      const parkedCount = kind.shared ? 3 : 2;
      const prefix = `corral-pool-${d.child.pid}.`;
      const names = () => {
        const found = findCgroupDirs(
          (n) => n.startsWith(prefix),
          (h) => h !== 'unified',
        );
        return new Set(found.map((dir) => dir.slice(dir.lastIndexOf('/') + 1)));
      };
      await until(() => names().size === parkedCount, 'an empty parking cgroup for each parked keeper');
      const before = names();
      // Empty: nothing of the pool is in them.
      for (const name of before)
        for (const dir of cgroupDirs(name)) expect(readFileSync(join(dir, 'cgroup.procs'), 'utf8')).toBe('');
      const id = await runLimited(d, ['sleep', '60']);
      // One of them is the container's now (gone by its name), the others wait on.
      const left = [...before].filter((n) => cgroupDirs(n).length > 0);
      expect(left).toHaveLength(parkedCount - 1);
      expectContainerCgroup(d, Number((await d.must(['inspect', '-f', '{{.State.Pid}}', id])).out), id);
      expectLimits(id);
      await d.must(['rm', '-f', id]);
      expect(cgroupDirs(`corral-${id}`)).toEqual([]);
      // The limit holds, and the kill is counted in the cgroup that was the pool's.
      await runOverLimit(d, ['--name', 'oom']);
      expect((await d.must(['inspect', '-f', '{{.State.OOMKilled}}', 'oom'])).out).toBe('true');
      await d.must(['rm', 'oom']);
      // A container that needs an init leaves its keeper's empty cgroup, which goes with it.
      const t = await d.docker(['run', '--rm', '--init', '--network', 'none', 'busybox', 'true']);
      expect(t.status).toBe(0);
      await parked(d, 2, kind);
      await until(() => names().size === parkedCount, 'the parking cgroups of the parked keepers alone');
      // And all go when corrald shuts down.
      const exited = new Promise((r) => d.child.once('exit', r));
      d.child.kill('SIGTERM');
      await exited;
      expect(names().size).toBe(0);
    },
  );

  it('removes the parking cgroups a corrald killed with SIGKILL left, when the next one starts', async () => {
    const first = await startDaemon(c, ['--pool-size', '2', ...INITS]);
    c.add(() => removeCgroups(`corral-pool-${first.child.pid}.`)); // had the next one failed
    const pool = await parked(first, 2, POOL_INITS);
    const names = await parkings(pool.inits);
    const exited = new Promise((r) => first.child.once('exit', r));
    first.child.kill('SIGKILL');
    await exited;
    await until(() => pool.all.every((p) => !alive(p)), 'the parked keepers and inits to end', 20_000);
    // Left behind, empty: nothing else removes them.
    for (const n of names) expect(cgroupDirs(n).length).toBeGreaterThan(0);
    const next = await startDaemon(c, ['--pool-size', '1', ...INITS]);
    await parked(next, 1, POOL_INITS);
    for (const n of names) expect(cgroupDirs(n)).toEqual([]);
  });

  it('refuses a bad size', async () => {
    const d = c.tempDir('corrald-bad-pool');
    for (const bad of ['-1', 'x', '1000']) {
      const r = await exec(process.execPath, [CORRALD, '--pool-size', bad, '--data-root', join(d, 'root')]);
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/invalid pool size/);
    }
    const r = await exec(process.execPath, [CORRALD, '--pool-inits=maybe', '--data-root', join(d, 'root')]);
    expect([r.status, r.stderr]).toEqual([
      1,
      expect.stringContaining('invalid value "maybe" for --pool-inits'),
    ]);
    for (const bad of ['0', '2.5', 'x', '1000']) {
      const r = await exec(process.execPath, [
        CORRALD,
        '--containers-per-keeper',
        bad,
        '--data-root',
        join(d, 'root'),
      ]);
      expect([r.status, r.stderr]).toEqual([1, expect.stringContaining(`invalid containers per keeper`)]);
    }
  });

  it.each([SHARED, ...KINDS])(
    'hands out keepers and inits that hold no host fd, cwd or root a container can reach (the attack run for real, $kind)',
    async (kind) => {
      const { flags } = kind;
      // The canary: a file in a folder on the host. corrald runs in that folder, and holds both
      // open as fds it inherited without close-on-exec (a careless supervisor's leak).
      const dir = c.tempDir('corrald-canary');
      const secret = `SECRET-${process.pid}-${Date.now()}`;
      const canaryDir = join(dir, 'canary-dir');
      mkdirSync(canaryDir);
      const canary = join(canaryDir, 'canary');
      writeFileSync(canary, `${secret}\n`);
      const d = await startDaemon(c, ['--pool-size', '2', ...flags], undefined, {
        cwd: canaryDir,
        leak: [canary, canaryDir],
      });
      const pool = await parked(d, 2, kind);
      // The leak is there to be had: corrald holds the canary...
      const held = (pid: number, fd: string) => {
        try {
          return readlinkSync(`/proc/${pid}/fd/${fd}`);
        } catch {
          return '';
        }
      };
      const allHeld = (pid: number) => readdirSync(`/proc/${pid}/fd`).map((fd) => held(pid, fd));
      expect(allHeld(d.child.pid!)).toEqual(expect.arrayContaining([canary, canaryDir]));
      // (open across exec: every child it spawns inherits them unless that child lets go)
      for (const fd of [LEAK_FD, LEAK_FD + 1]) expect(flagsOf(d.child.pid!, fd) & 0o2000000).toBe(0);
      // ...its parked inits do not (their keeper let go of them: close-on-exec, as Node cannot
      // tell them from its own to close them), and none of them sits in its folder.
      for (const pid of pool.inits) expect(allHeld(pid).filter((l) => l.startsWith(dir))).toEqual([]);
      for (const pid of pool.keepers) {
        const leaked = readdirSync(`/proc/${pid}/fd`).filter((fd) => held(pid, fd).startsWith(dir));
        for (const fd of leaked) expect(flagsOf(pid, Number(fd)) & 0o2000000).not.toBe(0);
      }
      for (const pid of [...pool.keepers, ...pool.inits]) expect(readlinkSync(`/proc/${pid}/cwd`)).toBe('/');

      const r = await d.docker([
        'run',
        '--name',
        'attack',
        '--network',
        'none',
        '-e',
        `CANARY=${canary}`,
        'busybox',
        'sh',
        '-c',
        ATTACK,
      ]);
      expect(r.status).toBe(0);
      expect(r.stdout).toMatch(/tasks seen: [1-9]/);
      expect(r.stdout).toMatch(/task \/proc\/1 cwd=\/ root=\//);
      expect(r.stdout).not.toContain('LEAK');
      expect(r.stdout).not.toContain(secret);
      expect(r.stdout).not.toContain(dir);
      // It ran under one of the keepers that were parked.
      const id = (await d.docker(['inspect', '-f', '{{.Id}}', 'attack'])).out;
      const record = JSON.parse(readFileSync(join(d.root, 'containers', id, 'container.json'), 'utf8'));
      expect(pool.keepers).toContain(record.state.watcherPid);
      expect((await d.docker(['rm', 'attack'])).status).toBe(0);
    },
  );

  it.each([SHARED, ...KINDS])(
    'leaves no parked keeper or init behind when corrald is killed with SIGKILL ($kind)',
    async (kind) => {
      const d = await startDaemon(c, ['--pool-size', '3', ...kind.flags]);
      c.add(() => removeCgroups(`corral-pool-${d.child.pid}.`)); // the next corrald's to remove
      const pool = await parked(d, 3, kind);
      const exited = new Promise((r) => d.child.once('exit', r));
      d.child.kill('SIGKILL');
      await exited;
      await until(() => pool.all.every((p) => !alive(p)), 'the parked keepers and inits to end', 20_000);
    },
  );

  it('ends its parked keepers and inits when it shuts down', async () => {
    const d = await startDaemon(c, ['--pool-size', '2', ...INITS]);
    const pool = await parked(d, 2, POOL_INITS);
    const names = await parkings(pool.inits);
    const exited = new Promise((r) => d.child.once('exit', r));
    d.child.kill('SIGTERM');
    await exited;
    // Gone by the time it has exited (it waits for them), save a zombie's last moment.
    await until(() => pool.all.every((p) => !alive(p)), 'the parked keepers and inits to end', 2_000);
    // And so are the cgroups they were parked in.
    for (const n of names) expect(cgroupDirs(n)).toEqual([]);
  });
});
