import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Sandbox } from './helpers.js';

// An unprivileged local user (uid 65534) against a corral data root whose parent is 0755,
// as /var/lib is: the attacks run for real and must fail; containers of any user still work.

// setpriv still holds root's capabilities when it execs the program (they go at the
// execve), so the path is walked through sh, which starts as plain uid 65534.
const NOBODY = ['--reuid=65534', '--regid=65534', '--clear-groups', '--', '/bin/sh', '-c', 'exec "$@"', 'sh'];
const asNobody = (argv: string[]) => {
  const r = spawnSync('setpriv', [...NOBODY, ...argv], { encoding: 'utf8', timeout: 10_000 });
  return { status: r.status, out: r.stdout.trim(), err: r.stderr.trim() };
};
const modeOf = (p: string) => statSync(p).mode & 0o7777;

const parent = mkdtempSync(join(tmpdir(), 'corral-state-'));
chmodSync(parent, 0o755);
const s = new Sandbox(join(parent, 'root'));

beforeAll(async () => {
  // An image whose layer holds a setuid-root copy of coreutils' id: the canary. Run by
  // uid 65534, it prints 0 if the attack worked (busybox would drop the setuid bit itself).
  const rootfs = join(parent, 'rootfs');
  mkdirSync(join(rootfs, 'bin'), { recursive: true });
  copyFileSync('/usr/bin/id', join(rootfs, 'bin', 'id'));
  chmodSync(join(rootfs, 'bin', 'id'), 0o4755);
  const tar = join(parent, 'suid.tar');
  expect(spawnSync('tar', ['-C', rootfs, '-cf', tar, '.']).status).toBe(0);
  expect((await s.corral(['import', tar, 'suid:1'])).status).toBe(0);
});
afterAll(async () => {
  try {
    await s.teardown();
  } finally {
    rmSync(parent, { recursive: true, force: true });
  }
});

/** The canary in the unpacked layer, checked to be armed. */
function layerCanary(): string {
  const l = join(s.root, 'image', 'l');
  const ids = readdirSync(l).map((d) => join(l, d, 'bin', 'id'));
  const id = ids.find((p) => (statSync(p, { throwIfNoEntry: false })?.mode ?? 0) & 0o4000);
  expect(id).toBeDefined();
  return id!;
}

describe('the data root keeps other local users out', () => {
  it('no setuid binary of an unpacked layer can be run by another user (CVE-2021-41091 class)', () => {
    const r = asNobody([layerCanary(), '-u']);
    expect(r.out).not.toBe('0');
    expect(r.err).toMatch(/Permission denied/);
  });

  it("nor one in a running container's root or writable layer", async () => {
    // containers/ was 0710 before this too: a guard that it stays closed.
    const run = await s.corral(['run', '-d', '--name', 'victim', 'busybox', 'sleep', '100']);
    expect(run.status).toBe(0);
    const dir = join(s.root, 'containers', run.out);
    // Put through the container's mounted root: it lands in the writable layer.
    copyFileSync('/usr/bin/id', join(dir, 'rootfs', 'suid-id'));
    chmodSync(join(dir, 'rootfs', 'suid-id'), 0o4755);
    for (const p of [join(dir, 'rootfs', 'suid-id'), join(dir, 'upper', 'suid-id')]) {
      const r = asNobody([p, '-u']);
      expect(r.out, p).not.toBe('0');
      expect(r.err).toMatch(/Permission denied/);
    }
    await s.corral(['rm', '-f', 'victim']);
  });

  it('every folder of the data root is 0700, and containers of non-root users still work', async () => {
    const r = await s.corral(['run', '-d', '--name', 'user', '-u', '1000', 'busybox', 'sleep', '100']);
    expect(r.status).toBe(0);
    const out = await s.corral([
      'exec',
      '-u',
      '1000',
      'user',
      'sh',
      '-c',
      'id -u; echo x > /tmp/f; cat /tmp/f',
    ]);
    expect(out.out).toBe('1000\nx');
    const init = [
      'run',
      '--rm',
      '--init',
      '-u',
      '1000',
      'busybox',
      'sh',
      '-c',
      'cat /etc/hosts >/dev/null && id -u',
    ];
    expect((await s.corral(init)).out).toBe('1000');
    const dirs = [s.root, ...['containers', 'names', 'image', 'runtime'].map((d) => join(s.root, d))];
    dirs.push(join(s.root, 'containers', r.out));
    for (const d of dirs) expect([d, modeOf(d).toString(8)]).toEqual([d, '700']);
    await s.corral(['rm', '-f', 'user']);
  });

  it('a data root made by an older version (0711, 0710, 0755) is made private when opened', async () => {
    const created = await s.corral(['create', 'busybox', 'true']);
    expect(created.status).toBe(0);
    const old: [string, number][] = [
      [join(s.root, 'containers', created.out), 0o710],
      [s.root, 0o711],
      [join(s.root, 'containers'), 0o710],
      [join(s.root, 'image'), 0o755],
      [join(s.root, 'image', 'l'), 0o755],
      [join(s.root, 'image', 'blobs'), 0o755],
      [join(s.root, 'image', 'locks'), 0o755],
    ];
    for (const [d, m] of old) chmodSync(d, m);
    expect(asNobody(['ls', join(s.root, 'image', 'l')]).status).toBe(0);
    expect((await s.corral(['ps', '-a'])).status).toBe(0);
    for (const [d] of old) expect([d, modeOf(d).toString(8)]).toEqual([d, '700']);
    // `images` too (it lists without the Engine, which it opens for this).
    for (const [d, m] of old.slice(3)) chmodSync(d, m);
    expect((await s.corral(['images'])).status).toBe(0);
    for (const [d] of old) expect([d, modeOf(d).toString(8)]).toEqual([d, '700']);
    expect(asNobody(['ls', join(s.root, 'image', 'l')]).status).not.toBe(0);
    expect(asNobody([layerCanary(), '-u']).out).not.toBe('0');
  });
});
