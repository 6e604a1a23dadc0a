import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Sandbox } from './helpers.js';

const s = new Sandbox();
afterAll(() => s.teardown());

describe('corral run IMAGE', () => {
  it('runs the embedded busybox image with its config (Cmd sh, PATH)', async () => {
    expect((await s.corral(['run', '--rm', 'busybox', 'sh', '-c', 'echo $PATH'])).out).toBe(
      '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    );
    // No command: the image's Cmd (sh) reads the empty stdin and exits 0.
    expect((await s.corral(['run', '--rm', 'busybox'])).status).toBe(0);
    expect((await s.corral(['images'])).out).toMatch(/busybox\s+latest\s+[0-9a-f]{12}/);
  });

  it('applies --entrypoint over the image', async () => {
    expect((await s.corral(['run', '--rm', '--entrypoint', 'echo', 'busybox', 'a', 'b'])).out).toBe('a b');
  });

  it('says clearly that an unknown image is not there', async () => {
    // --pull never: the default would ask Docker Hub, off this machine (run-pull.test.ts pulls).
    const r = await s.corral(['run', '--rm', '--pull', 'never', 'no-such-image:1']);
    expect(r.status).toBe(125);
    expect(r.stderr).toContain("Unable to find image 'no-such-image:1' locally");
  });
});

describe('commit, save, load, history, tag, rmi, export', () => {
  it('round-trips a committed image through save and load', async () => {
    await s.corral(['run', '--name', 'maker', 'busybox', 'sh', '-c', 'echo made > /made']);
    const id = (await s.corral(['commit', 'maker', 'made:1'])).out;
    expect(id).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect((await s.corral(['run', '--rm', 'made:1', 'cat', '/made'])).out).toBe('made');
    expect((await s.corral(['history', 'made:1'])).out).toContain('sh -c echo made > /made');

    const archive = join(s.root, 'made.tar');
    expect((await s.corral(['save', '-o', archive, 'made:1'])).status).toBe(0);
    // In use by a container: refused without -f.
    const c = (await s.corral(['create', 'made:1', 'true'])).out;
    const refused = await s.corral(['rmi', 'made:1']);
    expect(refused.status).toBe(1);
    await s.corral(['rm', c, 'maker']);
    expect((await s.corral(['rmi', 'made:1'])).status).toBe(0);
    expect((await s.corral(['images'])).out).not.toContain('made');

    expect((await s.corral(['load', '-i', archive])).out).toBe('Loaded image: made:1');
    expect((await s.corral(['images', '-q'])).out).toContain(id.slice(7, 19));
    expect((await s.corral(['tag', 'made:1', 'again:2'])).status).toBe(0);
    expect((await s.corral(['run', '--rm', 'again:2', 'cat', '/made'])).out).toBe('made');
  });

  it('refuses a corrupt archive and keeps what is stored', async () => {
    const before = (await s.corral(['images', '-q'])).out;
    const bad = join(s.root, 'bad.tar');
    writeFileSync(bad, Buffer.alloc(4096, 7));
    const r = await s.corral(['load', '-i', bad]);
    expect(r.status).toBe(1);
    expect(r.stderr.length).toBeGreaterThan(0);
    expect((await s.corral(['images', '-q'])).out).toBe(before);
  });

  it('exports a container filesystem as a tar', async () => {
    const c = (await s.corral(['create', 'busybox', 'true'])).out;
    const out = join(s.root, 'export.tar');
    expect((await s.corral(['export', '-o', out, c])).status).toBe(0);
    expect(existsSync(out)).toBe(true);
    expect(s.mounts()).toEqual([]);
    await s.corral(['rm', c]);
  });
});

describe('users and a fresh data root', () => {
  it('runs a uid without a passwd entry with gid 0, and gives the groups of /etc/group', async () => {
    expect((await s.corral(['run', '--rm', '-u', '1234', 'busybox', 'id', '-u'])).out).toBe('1234');
    expect((await s.corral(['run', '--rm', '-u', '1234', 'busybox', 'id', '-g'])).out).toBe('0');
    const groups = (await s.corral(['run', '--rm', 'busybox', 'grep', 'Groups', '/proc/self/status'])).out;
    expect(groups.split(/\s+/)).toContain('0');
  });

  it('fails at once, without hanging, for an unknown user', async () => {
    const r = await s.corral(['run', '--rm', '-u', 'bob', 'busybox', 'id']);
    expect(r.status).toBe(125);
    expect(r.stderr).toContain('unable to find user bob');
  });

  it('saves and tags the embedded busybox in a data root that never ran it', async () => {
    const fresh = new Sandbox();
    try {
      const archive = join(fresh.root, 'bb.tar');
      expect((await fresh.corral(['save', '-o', archive, 'busybox'])).status).toBe(0);
      expect(existsSync(archive)).toBe(true);
      expect((await fresh.corral(['tag', 'busybox', 'mine:1'])).status).toBe(0);
    } finally {
      await fresh.teardown();
    }
  });
});
