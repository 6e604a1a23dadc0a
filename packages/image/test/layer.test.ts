import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { lgetxattr, lsetxattr, MNT, MS, makedev, mknod, mount, S_IF, umount2 } from '@corral/sys';
import { Cleanups } from '@corral/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import { applyLayer, diffLayer, exportRootfs, parsePaxRecords } from '../src/index.js';
import { collect, listTree, makeTar, readTar } from './helpers.js';

const cleanup = new Cleanups();
afterEach(() => cleanup.run());
function root(): string {
  return cleanup.tempDir('image');
}
function layerDir(): string {
  const d = join(root(), 'layer');
  fs.mkdirSync(d);
  return d;
}

const MTIME = new Date(1_600_000_000_000);
const longName = `${'a'.repeat(120)}/${'b'.repeat(130)}/${'c'.repeat(150)}.txt`;

async function richTar(): Promise<Buffer> {
  return makeTar([
    { name: 'bin/', type: 'directory', mode: 0o755 },
    { name: 'bin/tool', body: '#!/bin/sh\necho hi\n', mode: 0o4755, uid: 1000, gid: 1001 },
    { name: 'bin/sg', body: 'x', mode: 0o2755, gid: 50 },
    { name: 'tmp/', type: 'directory', mode: 0o1777 },
    { name: 'bin/ln', type: 'symlink', linkname: 'tool' },
    { name: 'bin/hard', type: 'link', linkname: 'bin/tool' },
    { name: 'dev/', type: 'directory' },
    { name: 'dev/null', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 },
    { name: 'dev/loop9', type: 'block-device', devmajor: 7, devminor: 9, mode: 0o660 },
    { name: 'dev/fifo', type: 'fifo', mode: 0o600 },
    { name: 'caps', body: 'c', pax: { 'SCHILY.xattr.user.note': 'hello' } },
    { name: longName, body: 'long' },
    { name: 'bigid', body: 'i', pax: { uid: '3000000', gid: '3000001', mtime: '1600000000.5' } },
  ]);
}

describe('applyLayer', () => {
  it('keeps the tar order where it matters while files are written in the background', async () => {
    const dir = layerDir();
    const many = Array.from({ length: 150 }, (_, i) => ({ name: `d${i % 3}/f${i}`, body: `file ${i}` }));
    await applyLayer(
      Readable.from([
        await makeTar([
          ...many,
          { name: 'same', body: 'first' },
          { name: 'same', body: 'second', mode: 0o600 },
          { name: 'hard', type: 'link', linkname: 'd1/f1' },
          { name: 'd2/.wh.f2', body: '' },
          { name: 'd0/.wh.f0', body: '' },
          { name: 'gone/', type: 'directory' },
          ...Array.from({ length: 20 }, (_, i) => ({ name: `gone/x${i}`, body: 'x' })),
          { name: '.wh.gone', body: '' },
          { name: 'was-file', body: 'f' },
          { name: 'was-file/', type: 'directory', mode: 0o750 },
          { name: 'was-file/inner', body: 'i' },
          { name: 'ln', type: 'symlink', linkname: 'd1' },
          { name: 'ln/through', body: 't' },
        ]),
      ]),
      dir,
    );
    for (let i = 3; i < 150; i++)
      expect(fs.readFileSync(join(dir, `d${i % 3}/f${i}`), 'utf8')).toBe(`file ${i}`);
    expect(fs.readFileSync(join(dir, 'same'), 'utf8')).toBe('second');
    expect(fs.lstatSync(join(dir, 'same')).mode & 0o777).toBe(0o600);
    expect(fs.readFileSync(join(dir, 'hard'), 'utf8')).toBe('file 1');
    expect(fs.lstatSync(join(dir, 'hard')).ino).toBe(fs.lstatSync(join(dir, 'd1/f1')).ino);
    for (const w of ['d2/f2', 'd0/f0', 'gone']) {
      const st = fs.lstatSync(join(dir, w));
      expect(st.isCharacterDevice() && st.rdev === 0).toBe(true);
    }
    expect(fs.lstatSync(join(dir, 'was-file')).isDirectory()).toBe(true);
    expect(fs.readFileSync(join(dir, 'was-file/inner'), 'utf8')).toBe('i');
    expect(fs.readFileSync(join(dir, 'd1/through'), 'utf8')).toBe('t');
  });

  it('unpacks files, folders, links, devices, fifos, owners, special modes, xattrs, long names', async () => {
    const dir = layerDir();
    const data = await richTar();
    const result = await applyLayer(Readable.from([data]), dir);
    expect(result.diffId).toBe(`sha256:${createHash('sha256').update(data).digest('hex')}`);
    expect(result.compression).toBe('none');
    const tool = fs.lstatSync(join(dir, 'bin/tool'));
    expect(tool.mode & 0o7777).toBe(0o4755);
    expect([tool.uid, tool.gid]).toEqual([1000, 1001]);
    expect(tool.mtime.getTime()).toBe(MTIME.getTime());
    expect(fs.lstatSync(join(dir, 'bin/sg')).mode & 0o7777).toBe(0o2755);
    expect(fs.lstatSync(join(dir, 'tmp')).mode & 0o7777).toBe(0o1777);
    expect(fs.lstatSync(join(dir, 'bin')).mtime.getTime()).toBe(MTIME.getTime());
    expect(fs.readlinkSync(join(dir, 'bin/ln'))).toBe('tool');
    expect(fs.lstatSync(join(dir, 'bin/hard')).ino).toBe(tool.ino);
    const nul = fs.lstatSync(join(dir, 'dev/null'));
    expect(nul.isCharacterDevice()).toBe(true);
    expect(nul.rdev).toBe(Number(makedev(1, 3)));
    expect(fs.lstatSync(join(dir, 'dev/loop9')).isBlockDevice()).toBe(true);
    expect(fs.lstatSync(join(dir, 'dev/fifo')).isFIFO()).toBe(true);
    expect(lgetxattr(join(dir, 'caps'), 'user.note')?.toString()).toBe('hello');
    expect(fs.readFileSync(join(dir, longName), 'utf8')).toBe('long');
    const big = fs.lstatSync(join(dir, 'bigid'));
    expect([big.uid, big.gid, big.mtimeMs]).toEqual([3000000, 3000001, 1600000000500]);
  });

  it('decompresses gzip and zstd layers and reports the uncompressed diff ID', async () => {
    const data = await richTar();
    const diffId = `sha256:${createHash('sha256').update(data).digest('hex')}`;
    const gz = await applyLayer(Readable.from([gzipSync(data)]), layerDir());
    expect(gz).toMatchObject({ diffId, compression: 'gzip' });
    const zst = execFileSync('zstd', ['-q', '-c'], { input: data });
    const z = await applyLayer(Readable.from([zst]), layerDir());
    expect(z).toMatchObject({ diffId, compression: 'zstd' });
  });

  it('turns OCI whiteouts into the overlay format', async () => {
    const dir = layerDir();
    fs.mkdirSync(join(dir, 'etc'));
    fs.writeFileSync(join(dir, 'etc/gone'), 'x');
    await applyLayer(
      Readable.from([
        await makeTar([
          { name: 'etc/', type: 'directory' },
          { name: 'etc/.wh.gone' },
          { name: 'etc/.wh.never-there' },
          { name: 'var/cache/', type: 'directory' },
          { name: 'var/cache/.wh..wh..opq' },
          { name: 'var/cache/new', body: 'n' },
        ]),
      ]),
      dir,
    );
    for (const n of ['etc/gone', 'etc/never-there']) {
      const st = fs.lstatSync(join(dir, n));
      expect(st.isCharacterDevice() && st.rdev === 0).toBe(true);
    }
    expect(lgetxattr(join(dir, 'var/cache'), 'trusted.overlay.opaque')?.toString()).toBe('y');
    expect(fs.existsSync(join(dir, 'var/cache/.wh..wh..opq'))).toBe(false);
    expect(fs.readFileSync(join(dir, 'var/cache/new'), 'utf8')).toBe('n');
  });

  it('keeps binary xattr values intact (security.capability)', async () => {
    // cap_setuid+ep as a v2 capability blob: bytes above 0x7f are not valid UTF-8.
    const caps = Buffer.from('0100000280000000000000000000000000000000', 'hex');
    const dir = layerDir();
    const src = join(root(), 'src');
    fs.mkdirSync(src);
    fs.writeFileSync(join(src, 'ping'), 'p');
    lsetxattr(join(src, 'ping'), 'security.capability', caps);
    const tarBytes = await collect(exportRootfs(src));
    const entry = (await readTar(tarBytes)).find((e) => e.header.name === 'ping')!;
    expect(entry).toBeDefined();
    await applyLayer(Readable.from([tarBytes]), dir);
    expect(lgetxattr(join(dir, 'ping'), 'security.capability')).toEqual(caps);
  });

  it('refuses a corrupt tar with a typed error', async () => {
    const data = Buffer.from(await richTar());
    data.write('garbage!', 3); // breaks the first header checksum
    await expect(applyLayer(Readable.from([data]), layerDir())).rejects.toMatchObject({ code: 'BAD_LAYER' });
  });

  it('parses PAX records byte-exactly', () => {
    const rec = Buffer.concat([
      Buffer.from('21 SCHILY.xattr.a='),
      Buffer.from([0xff, 0x00]),
      Buffer.from('\n'),
    ]);
    expect(parsePaxRecords(rec).get('SCHILY.xattr.a')).toEqual(Buffer.from([0xff, 0x00]));
  });
});

describe('diffLayer with the real overlayfs', () => {
  const mounted: string[] = [];
  afterEach(() => {
    while (mounted.length) umount2(mounted.pop()!, MNT.DETACH);
  });
  const snapshot = (dir: string) =>
    listTree(dir).map((p) => {
      const st = fs.lstatSync(join(dir, p));
      return `${p}:${st.isDirectory() ? 'dir' : fs.readFileSync(join(dir, p), 'utf8')}`;
    });

  it('a container upper folder, diffed and applied as a layer, gives the same merged view', async () => {
    const base = root();
    const lower = join(base, 'lower');
    fs.mkdirSync(lower);
    await applyLayer(
      Readable.from([
        await makeTar([
          { name: 'etc/a', body: 'a' },
          { name: 'etc/b', body: 'b' },
          { name: 'dir/x', body: 'x' },
          { name: 'dir/y', body: 'y' },
        ]),
      ]),
      lower,
    );
    for (const d of ['upper', 'work', 'merged', 'layer2', 'merged2']) fs.mkdirSync(join(base, d));
    const merged = join(base, 'merged');
    mount(
      'overlay',
      merged,
      'overlay',
      0,
      `lowerdir=${lower},upperdir=${join(base, 'upper')},workdir=${join(base, 'work')}`,
    );
    mounted.push(merged);
    fs.rmSync(join(merged, 'etc/a'));
    fs.rmSync(join(merged, 'dir'), { recursive: true });
    fs.mkdirSync(join(merged, 'dir'));
    fs.writeFileSync(join(merged, 'dir/z'), 'z');
    fs.writeFileSync(join(merged, 'etc/c'), 'c');
    const expected = snapshot(merged);
    umount2(mounted.pop()!);

    const names = (await readTar(diffLayer(join(base, 'upper')))).map((e) => e.header.name);
    expect(names).toEqual(expect.arrayContaining(['etc/.wh.a', 'dir/.wh..wh..opq', 'etc/c', 'dir/z']));
    await applyLayer(diffLayer(join(base, 'upper')), join(base, 'layer2'));
    const merged2 = join(base, 'merged2');
    mount('overlay', merged2, 'overlay', MS.RDONLY, `lowerdir=${join(base, 'layer2')}:${lower}`);
    mounted.push(merged2);
    expect(snapshot(merged2)).toEqual(expected);
    expect(expected).toEqual(['dir:dir', 'dir/z:z', 'etc:dir', 'etc/b:b', 'etc/c:c']);
  });
});

describe('diffLayer and exportRootfs', () => {
  it('turns an overlay upper folder back into an OCI layer with whiteouts', async () => {
    const upper = layerDir();
    fs.mkdirSync(join(upper, 'etc'));
    fs.writeFileSync(join(upper, 'etc/new'), 'new');
    mknod(join(upper, 'etc/deleted'), S_IF.CHR, makedev(0, 0));
    fs.mkdirSync(join(upper, 'opaque'));
    lsetxattr(join(upper, 'opaque'), 'trusted.overlay.opaque', 'y');
    fs.writeFileSync(join(upper, 'opaque/kept'), 'k');
    fs.linkSync(join(upper, 'etc/new'), join(upper, 'etc/again'));
    const entries = await readTar(diffLayer(upper));
    const byName = new Map(entries.map((e) => [e.header.name.replace(/\/$/, ''), e]));
    expect([...byName.keys()]).toEqual([
      'etc',
      'etc/again',
      'etc/.wh.deleted',
      'etc/new',
      'opaque',
      'opaque/.wh..wh..opq',
      'opaque/kept',
    ]);
    expect(byName.get('etc/new')!.header.type).toBe('link');
    expect(byName.get('etc/new')!.header.linkname).toBe('etc/again');
    expect(byName.get('etc/again')!.body.toString()).toBe('new');
    // No overlay xattr leaks into the tar.
    expect(JSON.stringify(byName.get('opaque')!.header.pax ?? {})).not.toContain('overlay');
  });

  it('round-trips: export then apply gives the same tree, and equal mtimes give equal bytes', async () => {
    const first = layerDir();
    await applyLayer(Readable.from([await richTar()]), first);
    const a = await collect(exportRootfs(first, { mtime: MTIME }));
    const second = layerDir();
    await applyLayer(Readable.from([a]), second);
    const b = await collect(exportRootfs(second, { mtime: MTIME }));
    expect(b.equals(a)).toBe(true);
    expect(fs.lstatSync(join(second, 'bin/tool')).mode & 0o7777).toBe(0o4755);
    expect(fs.readFileSync(join(second, longName), 'utf8')).toBe('long');
    // GNU tar, an independent reader, lists the same names.
    const listed = execFileSync('tar', ['-t'], { input: a }).toString().trim().split('\n');
    expect(listed).toContain(longName);
    expect(listed).toContain('dev/null');
  });
});
