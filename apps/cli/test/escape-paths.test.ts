// Escape classes of the paths corral reads on a container's behalf (issue 9, part 6): the
// image's /etc files and the container's writable layer at commit, export and diff. Each
// attack runs for real against canary files outside the container.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makedev, mknod, S_IF } from '@corral/sys';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { type Result, Sandbox, until } from './helpers.js';

const s = new Sandbox();
const tmp = mkdtempSync(join(tmpdir(), 'corral-cli-escape-'));
afterAll(async () => {
  await s.teardown();
  rmSync(tmp, { recursive: true, force: true });
});

const bin = fileURLToPath(new URL('../bin/corral.cjs', import.meta.url));
const racerScript = fileURLToPath(new URL('../../../packages/sys/test/swap-racer.mjs', import.meta.url));
let racer: ChildProcess | null = null;
afterEach(() => {
  racer?.kill('SIGKILL');
  racer = null;
});

/** The CLI, killed after `ms`: a read that hangs fails the test instead of hanging it. */
function corralWithin(ms: number, args: string[]): Promise<Result & { timedOut: boolean }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bin, '--root', s.root, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, ms);
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr, out: stdout.trim(), timedOut });
    });
  });
}

/** A busybox root folder for --rootfs. */
function makeRootfs(name: string): string {
  const rootfs = join(tmp, name);
  mkdirSync(join(rootfs, 'bin'), { recursive: true });
  mkdirSync(join(rootfs, 'etc'));
  copyFileSync('/bin/busybox', join(rootfs, 'bin/busybox'));
  for (const a of ['sh', 'id', 'cat', 'mkdir', 'mv', 'ln', 'rm', 'sleep', 'seq', 'echo'])
    symlinkSync('busybox', join(rootfs, 'bin', a));
  return rootfs;
}

describe('the image’s /etc/passwd and /etc/group (-u NAME)', () => {
  it('are read inside the container’s root: a symlink to a host file leaks nothing', async () => {
    const hostPasswd = join(tmp, 'host-passwd');
    const hostGroup = join(tmp, 'host-group');
    writeFileSync(hostPasswd, 'leaked:x:4242:4343::/:/bin/sh\n');
    writeFileSync(hostGroup, 'leakedgroup:x:4444:leaked\n');
    const rootfs = makeRootfs('etc-links');
    symlinkSync(hostPasswd, join(rootfs, 'etc/passwd'));
    symlinkSync(hostGroup, join(rootfs, 'etc/group'));
    const r = await corralWithin(60_000, ['run', '--rm', '--rootfs', rootfs, '-u', 'leaked', 'id']);
    expect(r.status).toBe(125);
    expect(r.stderr).toContain('unable to find user leaked');
    expect(r.out).not.toContain('4242');
    const g = await corralWithin(60_000, ['run', '--rm', '--rootfs', rootfs, '-u', '0:leakedgroup', 'id']);
    expect(g.stderr).toContain('unable to find group leakedgroup');
    // The same names in the root's own files are found.
    mkdirSync(join(rootfs, tmp), { recursive: true });
    writeFileSync(join(rootfs, hostPasswd), 'inside:x:1234:1234::/:/bin/sh\n');
    expect(
      (await corralWithin(60_000, ['run', '--rm', '--rootfs', rootfs, '-u', 'inside', 'id', '-u'])).out,
    ).toBe('1234');
  });

  it('linked to /dev/zero or a FIFO, neither hangs corral nor is read', async () => {
    const rootfs = makeRootfs('etc-devices');
    symlinkSync('/dev/zero', join(rootfs, 'etc/passwd'));
    mkdirSync(join(rootfs, 'dev'));
    // Without a /dev/zero of the root's own the link leads nowhere: no entries.
    const none = await corralWithin(30_000, ['run', '--rm', '--rootfs', rootfs, '-u', '7', 'echo', 'ran']);
    expect(none.timedOut).toBe(false);
    expect(none.out).toBe('ran');
    mknod(join(rootfs, 'dev/zero'), S_IF.CHR | 0o666, makedev(1, 5));
    mknod(join(rootfs, 'etc/group'), S_IF.FIFO | 0o644);
    const r = await corralWithin(30_000, ['run', '--rm', '--rootfs', rootfs, '-u', 'x', 'echo', 'ran']);
    expect(r.timedOut).toBe(false);
    expect(r.status).toBe(125);
    expect(r.stderr).toContain("cannot read the image's /etc/passwd: /etc/passwd is not a regular file");
  });
});

/** What a tar holds, its entry names and every file's content, as one text. */
function tarText(file: string): string {
  const names = spawnSync('tar', ['-tvf', file], { encoding: 'utf8' }).stdout;
  const contents = spawnSync('tar', ['-xOf', file], { encoding: 'utf8', maxBuffer: 1 << 28 }).stdout;
  return names + contents;
}

/** The layers of a saved image, each as tarText. */
function savedLayersText(saved: string): string {
  const dir = mkdtempSync(join(tmp, 'saved-'));
  spawnSync('tar', ['-xf', saved, '-C', dir]);
  let text = '';
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (spawnSync('tar', ['-tf', p]).status === 0) text += tarText(p);
    }
  };
  walk(dir);
  rmSync(dir, { recursive: true, force: true });
  return text;
}

describe('commit, export and diff of a container that races them (CVE-2018-15664 class)', () => {
  it('never carry a host file that the container swaps in for one of its folders', async () => {
    // The host's secrets, under the same names and sizes as the container's own files, so a
    // read through the swapped-in symlink would fit the tar headers and go unnoticed.
    const canary = join(tmp, 'canary');
    mkdirSync(canary);
    for (let i = 0; i < 20; i++) writeFileSync(join(canary, `secret${i}`), `CANARY-${i}\n`);
    const rootfs = makeRootfs('racer');
    const script = `mkdir -p /x/d; for i in $(seq 0 19); do echo "INSIDE-$i" > /x/d/secret$i; done; ln -s ${canary} /x/l; echo ready; sleep 1000`;
    const id = (await s.corral(['run', '-d', '--name', 'racer', '--rootfs', rootfs, 'sh', '-c', script])).out;
    await until(async () => (await s.corral(['logs', 'racer'])).out === 'ready', 'the racer to be ready');
    // The container swaps its folder and its link to the host's folder, atomically, as fast as
    // it can. The swaps are made from the host side of its writable layer (busybox has no
    // renameat2), where pausing the container (commit's default) does not stop them: what is
    // tested here is that the walk itself never follows them.
    const upper = join(s.root, 'containers', id, 'upper');
    racer = spawn(process.execPath, [racerScript, join(upper, 'x/d'), join(upper, 'x/l')], {
      stdio: 'ignore',
    });
    let committed = 0;
    for (let i = 0; i < 5; i++) {
      const c = await s.corral(['commit', 'racer', `raced:${i}`]);
      if (c.status === 0) {
        committed++;
        const saved = join(tmp, `raced${i}.tar`);
        expect((await s.corral(['save', '-o', saved, `raced:${i}`])).status).toBe(0);
        expect(savedLayersText(saved)).not.toContain('CANARY');
      }
      const exported = join(tmp, `exported${i}.tar`);
      if ((await s.corral(['export', '-o', exported, 'racer'])).status === 0)
        expect(tarText(exported)).not.toContain('CANARY');
      const diff = await s.corral(['diff', 'racer']);
      expect(diff.out).toContain('/x/');
    }
    // Commits may fail when a file changes size under them, but not every one.
    expect(committed).toBeGreaterThan(0);
    await s.corral(['rm', '-f', 'racer']);
  }, 300_000);

  it('commit pauses the container by default and thaws it after', async () => {
    const rootfs = makeRootfs('pauser');
    const script =
      'mkdir -p /x/d; for i in $(seq 0 19); do echo $i > /x/d/f$i; done; echo ready; while :; do mv /x/d /x/e; mv /x/e /x/d; done';
    const id = (await s.corral(['run', '-d', '--name', 'pauser', '--rootfs', rootfs, 'sh', '-c', script]))
      .out;
    // Its 20 files made before the first commit (a loaded machine may start it late).
    await until(async () => (await s.corral(['logs', 'pauser'])).out === 'ready', 'the pauser to be ready');
    // The container's freezer cgroup, beneath ours (the runtime's), as the CLI made it.
    const mine = /^\d+:freezer:(.*)$/m.exec(readFileSync('/proc/self/cgroup', 'utf8'))?.[1] ?? '/';
    const freezerState = join('/sys/fs/cgroup/freezer', mine, `corral-${id}`, 'freezer.state');
    /** Runs a commit and says whether the container was seen frozen meanwhile. */
    const commitWatching = async (args: string[]) => {
      let frozen = false;
      let done = false;
      const watching = (async () => {
        while (!done) {
          if (readFileSync(freezerState, 'utf8').trim() === 'FROZEN') frozen = true;
          await new Promise((r) => setTimeout(r, 2));
        }
      })();
      const c = await s.corral(['commit', ...args]);
      done = true;
      await watching;
      return { status: c.status, frozen };
    };
    for (let i = 0; i < 3; i++) {
      expect(await commitWatching(['pauser', `paused:${i}`])).toEqual({ status: 0, frozen: true });
      const saved = join(tmp, `paused${i}.tar`);
      await s.corral(['save', '-o', saved, `paused:${i}`]);
      // Renames are atomic: the 20 files are there under exactly one name.
      const files = savedLayersText(saved)
        .split('\n')
        .filter((l) => /x\/[de]\/f\d+$/.test(l));
      expect(files).toHaveLength(20);
    }
    // Docker's opt-out: the container runs on while its layer is read (the walk copes).
    expect(await commitWatching(['--pause=false', 'pauser', 'unpaused'])).toEqual({
      status: 0,
      frozen: false,
    });
    expect(readFileSync(freezerState, 'utf8').trim()).toBe('THAWED');
    const state = JSON.parse((await s.corral(['inspect', 'pauser'])).out)[0].state;
    expect(state).toMatchObject({ status: 'running', paused: false });
    await s.corral(['rm', '-f', 'pauser']);
  }, 300_000);
});
