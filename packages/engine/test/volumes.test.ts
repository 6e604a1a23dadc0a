// Volumes, binds and tmpfs mounts with real containers, checked from inside and on the host;
// the attacks on mount targets and on the copy into a new volume run for real against canaries.
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { busyboxRootfs, Cleanups, imageArchive, unmountUnder } from '@corral/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../src/engine.js';
import type { CreateContainerOptions } from '../src/index.js';
import { parseMountFlag } from '../src/mount-parse.js';

const cleanups = new Cleanups();
const root = cleanups.tempDir('engine-volumes');
const tmp = cleanups.tempDir('engine-volumes-host');
cleanups.add(() => unmountUnder(root));
cleanups.add(async () => {
  // tmpfs volumes stay mounted on the host until removed: remove every volume left.
  const e = await Engine.open({ root });
  for (const c of e.list({ all: true })) await e.remove(c.id, { force: true, volumes: true });
  for (const v of e.volumes.list()) e.volumes.remove(v.Name);
  if (existsSync(join(root, 'network', 'networks'))) await e.networks.down();
});
afterAll(() => cleanups.run());

let engine: Engine;
beforeAll(async () => {
  engine = await Engine.open({ root });
  const archive = imageArchive(join(tmp, 'img'), {
    tag: 'voltest:1',
    files: {
      'data/seed.txt': 'from the image\n',
      'data/sub/deep.txt': 'deep\n',
      'etc/passwd': 'root:x:0:0::/root:/bin/sh\n',
    },
    volumes: ['/data'],
  });
  await engine.images.load(archive);
});

async function text(stream: NodeJS.ReadableStream | null): Promise<string> {
  let s = '';
  for await (const c of stream ?? []) s += c.toString();
  return s;
}

/** Runs `sh -c script` to its end (removed after) and returns what it printed and its code. */
async function sh(script: string, o: Partial<CreateContainerOptions> = {}) {
  const h = await engine.run(
    { image: 'busybox', cmd: ['sh', '-c', script], autoRemove: true, ...o },
    { stdout: 'pipe', stderr: 'pipe' },
  );
  const [out, err, code] = await Promise.all([text(h.stdout), text(h.stderr), h.wait()]);
  return { out, err, code };
}

const volumeNames = () => engine.volumes.list().map((v) => v.Name);
const containerIds = () => readdirSync(join(root, 'containers'));

describe('binds', () => {
  it('-v HOST:CTR: a file written inside is on the host; a missing host folder is made', async () => {
    const host = join(tmp, 'made-by-v');
    const r = await sh('echo hello > /out/f && cat /out/f', { volumes: [`${host}:/out`] });
    expect(r).toMatchObject({ out: 'hello\n', code: 0 });
    expect(readFileSync(join(host, 'f'), 'utf8')).toBe('hello\n');
  });

  it(':ro is enforced (EROFS), and a file can be bound on a file', async () => {
    const host = join(tmp, 'ro');
    mkdirSync(host);
    writeFileSync(join(host, 'keep'), 'kept\n');
    writeFileSync(join(tmp, 'single'), 'one file\n');
    const r = await sh('cat /ro/keep; cat /one; echo x > /ro/keep', {
      volumes: [`${host}:/ro:ro`, `${join(tmp, 'single')}:/one:ro,z`],
    });
    expect(r.out).toBe('kept\none file\n');
    expect(r.err).toMatch(/Read-only file system/);
    expect(r.code).not.toBe(0);
    expect(readFileSync(join(host, 'keep'), 'utf8')).toBe('kept\n');
  });

  it('--mount type=bind needs an existing source; -v makes one (Docker’s rule)', async () => {
    const missing = join(tmp, 'never-made');
    await expect(
      engine.create({
        image: 'busybox',
        cmd: ['true'],
        mounts: [parseMountFlag(`type=bind,src=${missing},dst=/x`)],
      }),
    ).rejects.toThrow(/bind source path does not exist/);
    expect(existsSync(missing)).toBe(false);
    const r = await sh('mount | grep " /x " | grep -c "(ro,"', {
      mounts: [parseMountFlag(`type=bind,source=${tmp},target=/x,readonly`)],
    });
    expect(r.out.trim()).toBe('1');
  });
});

describe('named and anonymous volumes', () => {
  it('a named volume is made on first use, filled from the image, and persists across containers', async () => {
    const r1 = await sh('cat /data/seed.txt /data/sub/deep.txt; echo more > /data/added', {
      image: 'voltest:1',
      volumes: ['filled:/data'],
    });
    expect(r1).toMatchObject({ out: 'from the image\ndeep\n', code: 0 });
    const v = engine.volumes.inspect('filled');
    expect(readFileSync(join(v.Mountpoint, 'added'), 'utf8')).toBe('more\n');
    // Not empty any more: a second container sees what the first left, not a fresh copy.
    const r2 = await sh('ls /data | sort | tr "\\n" " "', { volumes: ['filled:/data'] });
    expect(r2.out).toBe('added seed.txt sub ');
  });

  it('volume-nocopy and nocopy leave a new volume empty', async () => {
    const r = await sh('ls -A /data | wc -l', {
      image: 'voltest:1',
      mounts: [parseMountFlag('type=volume,src=empty1,dst=/data,volume-nocopy')],
    });
    expect(r.out.trim()).toBe('0');
    const r2 = await sh('ls -A /data | wc -l', { image: 'voltest:1', volumes: ['empty2:/data:nocopy'] });
    expect(r2.out.trim()).toBe('0');
  });

  it('-v CTR and the image’s VOLUME make anonymous volumes that --rm removes', async () => {
    const before = volumeNames();
    const r = await sh('cat /data/seed.txt; echo x > /anon/f; mount | grep -c -e " /data " -e " /anon "', {
      image: 'voltest:1',
      volumes: ['/anon'],
    });
    expect(r).toMatchObject({ out: 'from the image\n2\n', code: 0 });
    expect(volumeNames()).toEqual(before);
  });

  it('rm -v removes anonymous volumes, plain rm keeps them, named ones always stay', async () => {
    const before = volumeNames();
    const a = await engine.create({ image: 'busybox', cmd: ['true'], volumes: ['/anon', 'keepme:/named'] });
    const b = await engine.create({ image: 'busybox', cmd: ['true'], volumes: ['/anon'] });
    const anonA = engine.inspect(a.id).mounts.find((m) => m.Destination === '/anon')!.Name!;
    const anonB = engine.inspect(b.id).mounts.find((m) => m.Destination === '/anon')!.Name!;
    expect(volumeNames()).toEqual(expect.arrayContaining([anonA, anonB, 'keepme']));
    await engine.remove(a.id, { volumes: true });
    await engine.remove(b.id);
    expect(volumeNames()).not.toContain(anonA);
    expect(volumeNames()).toContain(anonB);
    expect(volumeNames()).toContain('keepme');
    expect(engine.volumes.prune().removed).toContain(anonB);
    expect(volumeNames().sort()).toEqual([...before, 'keepme'].sort());
    engine.volumes.remove('keepme');
  });

  it('--volumes-from sees the same data, read-only when asked', async () => {
    const src = await engine.create({
      image: 'busybox',
      cmd: ['true'],
      name: 'vsrc',
      volumes: ['shared1:/shared', join(tmp, 'sharedbind') + ':/hb'],
    });
    await sh('echo from-first > /shared/f; echo bound > /hb/g', { volumesFrom: ['vsrc'] });
    const r = await sh('cat /shared/f /hb/g; echo y > /shared/f', { volumesFrom: ['vsrc:ro'] });
    expect(r.out).toBe('from-first\nbound\n');
    expect(r.err).toMatch(/Read-only file system/);
    await engine.remove(src.id, { volumes: true });
    engine.volumes.remove('shared1');
  });
});

describe('tmpfs', () => {
  it('--tmpfs and --mount type=tmpfs get the size and mode asked for, noexec by default', async () => {
    const r = await sh('stat -c %a /t1 /t2; df -k /t1 /t2 | awk \'NR>1{print $2}\'; mount | grep " /t1 "', {
      tmpfs: ['/t1:size=2m,mode=1777'],
      mounts: [parseMountFlag('type=tmpfs,target=/t2,tmpfs-size=1m,tmpfs-mode=700')],
    });
    expect(r.code).toBe(0);
    const [m1, m2, s1, s2, line] = r.out.trim().split('\n');
    expect([m1, m2, s1, s2]).toEqual(['1777', '700', '2048', '1024']);
    expect(line).toMatch(/noexec/);
  });
});

describe('the volume store', () => {
  it('create, ls, inspect, rm; in use is a Conflict; -f ignores a missing one', async () => {
    const v = engine.volumes.create({ name: 'store1', labels: { a: 'b' } });
    expect(v).toMatchObject({ Name: 'store1', Driver: 'local', Labels: { a: 'b' }, Scope: 'local' });
    expect(engine.volumes.create({ name: 'store1' }).CreatedAt).toBe(v.CreatedAt); // idempotent
    expect(engine.volumes.list({ label: ['a=b'] }).map((x) => x.Name)).toEqual(['store1']);
    const c = await engine.create({ image: 'busybox', cmd: ['true'], volumes: ['store1:/s'] });
    expect(() => engine.volumes.remove('store1')).toThrow(/volume is in use/);
    expect(engine.volumes.list({ dangling: ['true'] }).map((x) => x.Name)).not.toContain('store1');
    await engine.remove(c.id);
    engine.volumes.remove('store1');
    expect(() => engine.volumes.inspect('store1')).toThrow(/no such volume/);
    engine.volumes.remove('store1', { force: true });
  });

  it('a damaged record is an error that names its file', () => {
    engine.volumes.create({ name: 'broken1' });
    const file = join(root, 'volumes', 'broken1', 'volume.json');
    writeFileSync(file, '{"name": "bro');
    expect(() => engine.volumes.inspect('broken1')).toThrow(file);
    writeFileSync(
      file,
      JSON.stringify({
        name: 'broken1',
        driver: 'local',
        createdAt: '',
        labels: {},
        options: {},
        anonymous: false,
      }),
    );
    engine.volumes.remove('broken1');
  });

  it('a tmpfs volume (-o type=tmpfs) is shared by its containers; a bind one shows its device', async () => {
    engine.volumes.create({ name: 'ram1', options: { type: 'tmpfs', device: 'tmpfs', o: 'size=3m' } });
    await sh('echo in-ram > /r/f', { volumes: ['ram1:/r'] });
    const r = await sh("cat /r/f; df -k /r | awk 'NR>1{print $2}'", { volumes: ['ram1:/r'] });
    expect(r.out).toBe('in-ram\n3072\n');
    // The data root's check knows the volume's tmpfs is its own: nothing to repair there.
    const check = await engine.system.check({ repair: true });
    expect(check.findings.filter((f) => f.problem.includes('ram1'))).toEqual([]);
    expect((await sh('cat /r/f', { volumes: ['ram1:/r'] })).out).toBe('in-ram\n');
    engine.volumes.remove('ram1');
    expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(join(root, 'volumes', 'ram1'));
    const dev = join(tmp, 'bind-device');
    mkdirSync(dev);
    engine.volumes.create({ name: 'dev1', options: { type: 'none', o: 'bind', device: dev } });
    await sh('echo via-device > /d/f', { volumes: ['dev1:/d'] });
    expect(readFileSync(join(dev, 'f'), 'utf8')).toBe('via-device\n');
    engine.volumes.remove('dev1');
    expect(() =>
      engine.volumes.create({ name: 'bad1', options: { type: 'ext4', device: '/dev/sda' } }),
    ).toThrow(/not supported/);
  });
});

describe('bad input: a clear error naming the flag, nothing created', () => {
  it.each([
    [
      'an unknown --mount key',
      () => ({ mounts: [parseMountFlag('type=bind,src=/tmp,dst=/x,colour=red')] }),
      /--mount: unknown key 'colour'/,
    ],
    [
      'a relative --mount target',
      () => ({ mounts: [parseMountFlag('type=bind,src=/tmp,dst=rel')] }),
      /--mount.*'rel' mount path must be absolute/,
    ],
    [
      'a relative -v target',
      () => ({ volumes: ['/tmp:rel'] }),
      /--volume.*'rel' mount path must be absolute/,
    ],
    [
      'a volume name with a slash',
      () => ({ volumes: ['a/b:/x'] }),
      /--volume.*"a\/b" includes invalid characters/,
    ],
    ['a volume name ..', () => ({ volumes: ['..:/x'] }), /--volume.*"\.\." includes invalid characters/],
    [
      'a --mount volume source with ..',
      () => ({ mounts: [parseMountFlag('type=volume,src=../../etc,dst=/x')] }),
      /--mount source "\.\.\/\.\.\/etc" includes invalid/,
    ],
    ['a bad -v mode', () => ({ volumes: ['/tmp:/x:rx'] }), /--volume: invalid mode: rx/],
    [
      'a bad --tmpfs option',
      () => ({ tmpfs: ['/t:colour=red'] }),
      /--tmpfs: invalid tmpfs option 'colour=red'/,
    ],
    ['a duplicate target', () => ({ volumes: ['/tmp:/x'], tmpfs: ['/x'] }), /Duplicate mount point: \/x/],
  ])('%s', async (_what, opts, message) => {
    const before = { containers: containerIds(), volumes: volumeNames() };
    await expect(
      (async () => engine.create({ image: 'busybox', cmd: ['true'], name: 'never', ...opts() }))(),
    ).rejects.toThrow(message);
    expect({ containers: containerIds(), volumes: volumeNames() }).toEqual(before);
  });

  it('a volume name with a slash or .. is refused by volume create', () => {
    expect(() => engine.volumes.create({ name: '../escape' })).toThrow(/invalid characters/);
    expect(() => engine.volumes.create({ name: 'a/b' })).toThrow(/invalid characters/);
    expect(existsSync(join(root, 'escape'))).toBe(false);
  });
});

describe('attacks on mount targets and on the copy into a new volume', () => {
  it('an image whose mount target goes through a symlink to a host folder mounts inside its root', async () => {
    const canary = join(tmp, 'host-canary-dir');
    mkdirSync(canary);
    writeFileSync(join(canary, 'canary'), 'host\n');
    const rootfs = busyboxRootfs(join(tmp, 'evil-rootfs'), 'tmp');
    symlinkSync(canary, join(rootfs, 'etc')); // /etc -> the host's canary folder (absolute)
    const src = join(tmp, 'bind-src');
    mkdirSync(src);
    writeFileSync(join(src, 'payload'), 'bound\n');
    const r = await sh('cat /etc/mnt/payload; ls /etc', {
      image: undefined,
      rootfs,
      volumes: [`${src}:/etc/mnt`, 'evil1:/etc/vol'],
      tmpfs: ['/etc/tmpfs'],
    });
    expect(r.out).toContain('bound\n');
    // Nothing was made in, or mounted on, the host's folder.
    expect(readdirSync(canary)).toEqual(['canary']);
    expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(canary);
    expect(readdirSync(join(rootfs, 'tmp'))).toEqual([]); // the read-only layer is untouched too
    engine.volumes.remove('evil1');
  });

  it('a target with .. stays inside the root', async () => {
    const canary = join(tmp, 'dotdot-canary');
    const r2 = await sh(`echo inside > ${canary}/f && cat ${canary}/f`, {
      volumes: [`${join(tmp, 'dotdot-src')}:/../../../..${canary}`],
    });
    expect(r2.out).toBe('inside\n');
    expect(existsSync(canary)).toBe(false);
    expect(readFileSync(join(tmp, 'dotdot-src', 'f'), 'utf8')).toBe('inside\n');
  });

  it('filling a volume reads the image’s folder inside its root: a symlink to a host folder leaks nothing', async () => {
    const secret = join(tmp, 'host-secret-dir');
    mkdirSync(secret);
    writeFileSync(join(secret, 'secret'), 'host secret\n');
    const rootfs = busyboxRootfs(join(tmp, 'leaky-rootfs'), 'etc', 'tmp');
    symlinkSync(secret, join(rootfs, 'data')); // /data -> the host's secret folder
    mkdirSync(join(rootfs, 'files'));
    symlinkSync(join(secret, 'secret'), join(rootfs, 'files', 'link')); // a link inside the copied folder
    const r = await sh('ls -A /data | wc -l; readlink /files/link; cat /files/link', {
      image: undefined,
      rootfs,
      volumes: ['leak1:/data', 'leak2:/files'],
    });
    expect(r.out.split('\n').slice(0, 2)).toEqual(['0', join(secret, 'secret')]);
    expect(r.out).not.toContain('host secret');
    const v = engine.volumes.inspect('leak1');
    expect(readdirSync(v.Mountpoint)).toEqual([]);
    engine.volumes.remove('leak1');
    engine.volumes.remove('leak2');
  });
});

describe('diff, commit and export leave volume, bind and tmpfs content out', () => {
  it('as Docker does', async () => {
    const c = await engine.create({
      image: 'busybox',
      cmd: [
        'sh',
        '-c',
        'echo v > /vol/in-volume; echo b > /bnd/in-bind; echo t > /tm/in-tmpfs; echo l > /in-layer',
      ],
      volumes: ['diffvol:/vol', `${join(tmp, 'diffbind')}:/bnd`],
      tmpfs: ['/tm'],
    });
    const h = await engine.attach(c.id, { stdout: 'pipe', stderr: 'pipe' });
    expect(await h.wait()).toBe(0);
    const paths = engine.diff(c.id).map((x) => x.path);
    expect(paths).toContain('/in-layer');
    expect(
      paths.filter((p) => p.includes('in-volume') || p.includes('in-bind') || p.includes('in-tmpfs')),
    ).toEqual([]);
    const img = await engine.commitContainer(c.id, { name: 'diffcommit:1' });
    const r = await sh('ls /in-layer; ls -A /vol /bnd /tm | grep -c in-', { image: 'diffcommit:1' });
    expect(r.out).toBe('/in-layer\n0\n');
    const chunks: Buffer[] = [];
    const out = new Writable({
      write(b, _e, cb) {
        chunks.push(b);
        cb();
      },
    });
    await engine.exportContainer(c.id, out);
    const tar = Buffer.concat(chunks).toString('latin1');
    expect(tar).toContain('in-layer');
    expect(tar).not.toMatch(/in-volume|in-bind|in-tmpfs/);
    await engine.remove(c.id);
    await engine.images.remove(img.id).catch(() => {});
    engine.volumes.remove('diffvol');
  });
});
