import { mkdirSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { getPriority } from 'node:os';
import { join } from 'node:path';
import { procStartTime } from '@corral/sys';
import { Cleanups, exec, until } from '@corral/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { CORRALD, type Daemon, LEAK_FD, startDaemon } from './daemon.js';

// corrald's pool of keepers started ahead (--pool-size): each parked with its init started,
// handed to a container at its start. What a parked keeper or init holds must be nothing a
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

/** corrald's parked keepers and their inits, once `size` are ready. */
async function parked(d: Daemon, size: number) {
  await until(
    async () => (await d.api('GET', '/info')).json().KeeperPool?.ready === size,
    'the pool to fill',
  );
  const keepers = childrenOf(d.child.pid!).filter((p) => cmdline(p).includes('keeper'));
  const inits = keepers.flatMap((k) => childrenOf(k));
  expect(keepers).toHaveLength(size);
  expect(inits).toHaveLength(size);
  expect(inits.every((p) => cmdline(p).includes('init'))).toBe(true);
  return {
    keepers,
    inits,
    all: [...keepers, ...inits].map((pid) => ({ pid, startTime: procStartTime(pid)! })),
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

describe('corrald --pool-size', () => {
  it('reports its pool and its memory in /info', async () => {
    const d = await startDaemon(c);
    const pool = await parked(d, 2); // the default size
    const info = (await d.api('GET', '/info')).json();
    expect(info.KeeperPool).toMatchObject({ size: 2, ready: 2 });
    expect(info.KeeperPool.pssBytes).toBeGreaterThan(4 << 20);
    expect(info.DaemonMemory.RssBytes).toBeGreaterThan(10 << 20);
    expect(info.DaemonMemory.PssBytes).toBeGreaterThan(0);
    // A run takes a parked keeper: the pool says so and fills again.
    const r = await d.docker(['run', '--rm', '--network', 'none', 'busybox', 'echo', 'pooled']);
    expect([r.status, r.stdout]).toEqual([0, 'pooled\n']);
    const after = await parked(d, 2);
    expect((await d.api('GET', '/info')).json().KeeperPool.hits).toBe(1);
    expect(after.keepers.filter((k) => pool.keepers.includes(k))).toHaveLength(1);
    // A terminal's container is served by a parked keeper too.
    const t = await d.docker(['run', '--rm', '-t', '--network', 'none', 'busybox', 'sh', '-c', 'tty']);
    expect([t.status, t.stdout.trim()]).toEqual([0, '/dev/pts/0']);
  });

  it('parks keepers and inits nicer, and gives a pooled container its own niceness back', async () => {
    const d = await startDaemon(c);
    const pool = await parked(d, 2);
    const own = getPriority(); // corrald's, inherited from us
    const niceOf = (pid: number) =>
      Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')[16]);
    for (const pid of [...pool.keepers, ...pool.inits]) expect(niceOf(pid)).toBe(Math.min(19, own + 10));
    // A keeper's session is an autogroup of its own, which the scheduler weighs as a whole
    // against corrald's: the group is nicer too, or the threads' niceness counts for nothing.
    const groupOf = (pid: number) =>
      /^(\S+) nice (-?\d+)/.exec(readFileSync(`/proc/${pid}/autogroup`, 'utf8'))!;
    const ownGroup = groupOf(d.child.pid!);
    for (const k of pool.keepers) {
      expect(groupOf(k)[1]).not.toBe(ownGroup[1]);
      expect(Number(groupOf(k)[2])).toBe(Math.min(19, Number(ownGroup[2]) + 10));
    }
    for (const i of pool.inits) expect(pool.keepers.map((k) => groupOf(k)[1])).toContain(groupOf(i)[1]);
    // The program (the pooled init's main thread, exec'd) and a child of it, as without a pool.
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
    expect([r.status, r.stdout]).toEqual([0, `${own}\n${own}\n${ownGroup[2]}\n`]);
    expect((await d.api('GET', '/info')).json().KeeperPool.hits).toBe(1);
  });

  it('refuses a bad size', async () => {
    const d = c.tempDir('corrald-bad-pool');
    for (const bad of ['-1', 'x', '1000']) {
      const r = await exec(process.execPath, [CORRALD, '--pool-size', bad, '--data-root', join(d, 'root')]);
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/invalid pool size/);
    }
  });

  it('hands out inits that hold no host fd, cwd or root a container can reach (the attack run for real)', async () => {
    // The canary: a file in a folder on the host. corrald runs in that folder, and holds both
    // open as fds it inherited without close-on-exec (a careless supervisor's leak).
    const dir = c.tempDir('corrald-canary');
    const secret = `SECRET-${process.pid}-${Date.now()}`;
    const canaryDir = join(dir, 'canary-dir');
    mkdirSync(canaryDir);
    const canary = join(canaryDir, 'canary');
    writeFileSync(canary, `${secret}\n`);
    const d = await startDaemon(c, ['--pool-size', '2'], undefined, {
      cwd: canaryDir,
      leak: [canary, canaryDir],
    });
    const pool = await parked(d, 2);
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
    // It ran in one of the inits that were parked.
    const id = (await d.docker(['inspect', '-f', '{{.Id}}', 'attack'])).out;
    const record = JSON.parse(readFileSync(join(d.root, 'containers', id, 'container.json'), 'utf8'));
    expect(pool.keepers).toContain(record.state.watcherPid);
    expect((await d.docker(['rm', 'attack'])).status).toBe(0);
  });

  it('leaves no parked keeper or init behind when corrald is killed with SIGKILL', async () => {
    const d = await startDaemon(c, ['--pool-size', '3']);
    const pool = await parked(d, 3);
    const exited = new Promise((r) => d.child.once('exit', r));
    d.child.kill('SIGKILL');
    await exited;
    await until(() => pool.all.every((p) => !alive(p)), 'the parked keepers and inits to end', 20_000);
  });

  it('ends its parked keepers and inits when it shuts down', async () => {
    const d = await startDaemon(c, ['--pool-size', '2']);
    const pool = await parked(d, 2);
    const exited = new Promise((r) => d.child.once('exit', r));
    d.child.kill('SIGTERM');
    await exited;
    // Gone by the time it has exited (it waits for them), save a zombie's last moment.
    await until(() => pool.all.every((p) => !alive(p)), 'the parked keepers and inits to end', 2_000);
  });
});
