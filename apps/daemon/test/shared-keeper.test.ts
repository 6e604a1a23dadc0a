import { spawnSync } from 'node:child_process';
import { chmodSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { procStartTime } from '@corral/sys';
import { Cleanups, until } from '@corral/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { type Daemon, startDaemon } from './daemon.js';

// corrald's shared keepers (engine keeper-host.ts): one keeper process keeps up to
// --containers-per-keeper containers, each as a keeper of its own would (its log, its exit,
// its stop), in conmon's class of memory per container. A container that needs an init gets a
// keeper of its own. A container kept beside others reaches nothing of theirs.
const c = new Cleanups();
afterAll(() => c.run());

const stat = (pid: number) => {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return s.slice(s.lastIndexOf(')') + 2).split(' ');
};
const ppidOf = (pid: number) => Number(stat(pid)[1]);
const cmdline = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
const isShared = (pid: number) => cmdline(pid).includes('keeper.cjs host ');

/** The container's record as corrald keeps it. */
function record(d: Daemon, id: string) {
  return JSON.parse(readFileSync(join(d.root, 'containers', id, 'container.json'), 'utf8'));
}

async function idOf(d: Daemon, name: string): Promise<string> {
  return (await d.must(['inspect', '-f', '{{.Id}}', name])).out;
}

/**
 * Until the pool has its 2 connections and its keeper of its own ready: a start before that
 * (a shared keeper still starting on a busy machine) may take the keeper of its own.
 */
async function poolReady(d: Daemon): Promise<void> {
  await until(async () => (await d.api('GET', '/info')).json().KeeperPool?.ready === 3, 'the pool');
}

/** The keeper of each container: its record's keeper, by name. */
async function keepersOf(d: Daemon, names: string[]): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const n of names) out.set(n, record(d, await idOf(d, n)).state.watcherPid);
  return out;
}

/**
 * Connects to a unix socket as an unprivileged local user (uid 65534, no groups): what it
 * answers ('connected', or the error code).
 */
function connectAsNobody(path: string): string {
  const probe = `require('node:net').connect(${JSON.stringify(path)}).on('connect', () => { console.log('connected'); process.exit(0); }).on('error', (e) => console.log(e.code))`;
  const r = spawnSync(
    'setpriv',
    ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '-e', probe],
    { encoding: 'utf8', timeout: 10_000 },
  );
  return r.stdout.trim();
}

describe('corrald --containers-per-keeper', () => {
  it('keeps several containers in one keeper process, each as its own keeper would, and no more than the limit', async () => {
    const d = await startDaemon(c, ['--containers-per-keeper', '3']);
    const names = ['k1', 'k2', 'k3', 'k4'];
    for (const n of names) {
      await poolReady(d);
      await d.must([
        'run',
        '-d',
        '--name',
        n,
        '--network',
        'none',
        'busybox',
        'sh',
        '-c',
        `echo out-${n}; echo err-${n} >&2; sleep 60`,
      ]);
    }
    await poolReady(d);
    await d.must([
      'run',
      '-d',
      '--name',
      'k5',
      '--network',
      'none',
      'busybox',
      'sh',
      '-c',
      'sleep 0.5; exit 7',
    ]);
    const keepers = await keepersOf(d, [...names, 'k5']);
    const count = new Map<number, number>();
    for (const pid of keepers.values()) count.set(pid, (count.get(pid) ?? 0) + 1);
    // Shared keepers all, some keeping several containers, none more than three (its parked
    // connections count too).
    for (const pid of count.keys()) expect(isShared(pid)).toBe(true);
    expect(Math.max(...count.values())).toBeGreaterThan(1);
    expect(Math.max(...count.values())).toBeLessThanOrEqual(3);
    expect(count.size).toBeGreaterThanOrEqual(2);
    // Each program is its keeper's child, as it would be of a keeper of its own.
    for (const n of names) {
      const pid = Number((await d.must(['inspect', '-f', '{{.State.Pid}}', n])).out);
      expect(ppidOf(pid)).toBe(keepers.get(n));
    }
    // Each one's log is its own, stdout and stderr apart.
    for (const n of names) {
      await until(async () => (await d.docker(['logs', n])).stderr === `err-${n}\n`, `the log of ${n}`);
      const logs = await d.must(['logs', n]);
      expect([logs.stdout, logs.stderr]).toEqual([`out-${n}\n`, `err-${n}\n`]);
    }
    expect((await d.must(['wait', 'k5'])).out).toBe('7');
    await d.must(['stop', '-t', '1', 'k1']);
    expect((await d.must(['inspect', '-f', '{{.State.Status}} {{.State.ExitCode}}', 'k1'])).out).toBe(
      'exited 137',
    );
    expect((await d.must(['ps', '--format', '{{.Names}}'])).out.split('\n').sort()).toEqual([
      'k2',
      'k3',
      'k4',
    ]);

    // A shared keeper killed takes its containers with it, as a keeper of their own would, and
    // no other's: the kill is recorded for each.
    const victim = keepers.get('k2')!;
    const withVictim = names.filter((n) => n !== 'k1' && keepers.get(n) === victim);
    const others = names.filter((n) => n !== 'k1' && keepers.get(n) !== victim);
    process.kill(victim, 'SIGKILL');
    for (const n of withVictim)
      await until(
        async () => (await d.docker(['inspect', '-f', '{{.State.Status}}', n])).out === 'exited',
        `${n} to be recorded as exited`,
      );
    for (const n of withVictim)
      expect((await d.must(['inspect', '-f', '{{.State.ExitCode}}', n])).out).toBe('137');
    for (const n of others)
      expect((await d.must(['inspect', '-f', '{{.State.Status}}', n])).out).toBe('running');

    // Once their containers are gone, the keepers the pool no longer gives out end.
    await d.must(['rm', '-f', ...names, 'k5']);
    const live = [...count.keys()].filter((pid) => procStartTime(pid) !== null && pid !== victim);
    await until(
      () => live.filter((pid) => procStartTime(pid) !== null).length <= 1,
      'the full keepers to end',
    );
  });

  it('gives a container that needs an init, or one its fast path cannot make, a keeper of its own', async () => {
    const d = await startDaemon(c);
    const runs: Record<string, string[]> = {
      stdin: ['-i', 'busybox', 'cat'],
      init: ['--init', 'busybox', 'sleep', '60'],
      sysctl: [
        '--sysctl',
        'net.ipv4.ip_forward=1',
        'busybox',
        'sh',
        '-c',
        'sysctl -n net.ipv4.ip_forward; sleep 60',
      ],
      plain: ['busybox', 'sleep', '60'],
    };
    for (const [name, args] of Object.entries(runs)) {
      await poolReady(d);
      await d.must(['run', '-d', '--name', name, '--network', 'none', ...args]);
    }
    const keepers = await keepersOf(d, Object.keys(runs));
    expect(isShared(keepers.get('plain')!)).toBe(true);
    for (const n of ['stdin', 'init', 'sysctl']) {
      expect(isShared(keepers.get(n)!), n).toBe(false);
      expect((await d.must(['inspect', '-f', '{{.State.Running}}', n])).out).toBe('true');
    }
    await until(async () => (await d.docker(['logs', 'sysctl'])).stdout === '1\n', 'the sysctl');
    await d.must(['rm', '-f', ...Object.keys(runs)]);
  });

  it('lets no container reach what the keeper holds for the others kept with it (the attack run for real)', async () => {
    const d = await startDaemon(c);
    // The canary: the first container's output, which the shared keeper holds as pipes and a
    // log file open on the host (printed again and again: a pipe leaked to another container
    // would give it the next lines).
    const secret = `SECRET-${process.pid}-${Date.now()}`;
    await poolReady(d);
    await d.must([
      'run',
      '-d',
      '--name',
      'holder',
      '--network',
      'none',
      'busybox',
      'sh',
      '-c',
      `while true; do echo ${secret}; sleep 0.1; done`,
    ]);
    const holder = await idOf(d, 'holder');
    const log = join(d.root, 'containers', holder, `${holder}-json.log`);
    await until(() => readFileSync(log, 'utf8').includes(secret), 'the canary in its log');
    const socket = join(d.root, 'keepers', `${record(d, holder).state.watcherPid}.sock`);
    expect(readdirSync(join(d.root, 'keepers'))).toContain(`${record(d, holder).state.watcherPid}.sock`);
    // Its fds as its first process has them (listed by a child: no redirection, for which the
    // shell would keep a copy of its stdout).
    const attack = `
ls -l /proc/$$/fd
for f in /proc/$$/fd/*; do
  n=\${f##*/}
  case $n in 0|1|2) continue;; esac
  timeout 1 head -c 4096 $f 2>/dev/null | grep -q ${secret.slice(0, 6)} && echo "LEAK fd $n"
done
cat ${log} /proc/1/root${log} 2>/dev/null | grep -q ${secret.slice(0, 6)} && echo "LEAK log"
ls ${socket} /proc/1/root${socket} 2>/dev/null && echo "LEAK socket"
echo done
`;
    await poolReady(d);
    const r = await d.docker([
      'run',
      '--name',
      'attacker',
      '--network',
      'none',
      'busybox',
      'sh',
      '-c',
      attack,
    ]);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('done');
    expect(r.stdout).not.toContain('LEAK');
    expect(r.stdout).not.toContain(secret);
    // Its fds: its stdio alone, nothing of the keeper's.
    const fds = r.stdout.split('\n').flatMap((l) => / (\d+) -> /.exec(l)?.[1] ?? []);
    expect(fds).toEqual(['0', '1', '2']);
    // Both were kept by the same keeper.
    expect(record(d, await idOf(d, 'attacker')).state.watcherPid).toBe(record(d, holder).state.watcherPid);
    await d.must(['rm', '-f', 'holder', 'attacker']);
  });

  it("keeps its keepers' socket from other local users: a private folder, a private socket", async () => {
    // corrald started with umask 0: nothing but the keeper's own choice makes the socket private.
    const umask = process.umask(0);
    const started = startDaemon(c);
    process.umask(umask);
    const d = await started;
    await poolReady(d);
    await d.must(['run', '-d', '--name', 'kept', '--network', 'none', 'busybox', 'sleep', '60']);
    const socket = join(d.root, 'keepers', `${record(d, await idOf(d, 'kept')).state.watcherPid}.sock`);
    expect(statSync(dirname(socket)).mode & 0o777).toBe(0o700);
    expect(statSync(socket).mode & 0o777).toBe(0o600);
    // The attack: a local user connects to send the keeper a bundle to run as root. Every
    // folder above the socket opened to others: the socket's own mode stops it...
    const opened = [dirname(d.root), d.root, dirname(socket)];
    const modes = opened.map((p) => statSync(p).mode & 0o777);
    try {
      for (const p of opened) chmodSync(p, 0o711);
      expect(connectAsNobody(socket)).toBe('EACCES');
      // ...and with the socket opened to all, its folder does.
      chmodSync(socket, 0o666);
      chmodSync(dirname(socket), 0o700);
      expect(connectAsNobody(socket)).toBe('EACCES');
      // With both open it gets in: the probe sees a way in when there is one.
      chmodSync(dirname(socket), 0o711);
      expect(connectAsNobody(socket)).toBe('connected');
    } finally {
      for (const [i, p] of opened.entries()) chmodSync(p, modes[i]);
      chmodSync(socket, 0o600);
    }
    await d.must(['rm', '-f', 'kept']);
  });
});
