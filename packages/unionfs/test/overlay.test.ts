import { spawn, spawnSync } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isMountPoint, MS, mount, readMountInfo } from '@corral/sys';
import { removeTree, tempDir } from '@corral/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import { getUnionFs, OverlayUnionFs, UnionFsError, unionFsBackends } from '../src/index.js';

const hasFuseOverlayfs = spawnSync('fuse-overlayfs', ['--version']).status === 0;

let root = '';
afterEach(() => {
  if (root) removeTree(root);
  root = '';
});

const mountOf = (target: string) => readMountInfo().find((m) => m.mountPoint === target);

async function expectUnionError(p: Promise<unknown>, code: string, text: RegExp) {
  const e = await p.then(
    () => null,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(UnionFsError);
  expect((e as UnionFsError).code).toBe(code);
  expect((e as Error).message).toMatch(text);
}

describe('registry', () => {
  it('gives each backend by name, overlay by default', () => {
    expect(getUnionFs('overlay').name).toBe('overlay');
    expect(getUnionFs().name).toBe('overlay');
    expect(getUnionFs('fuse').name).toBe('fuse');
    expect(unionFsBackends()).toEqual(['overlay', 'fuse']);
  });

  it('names the choices for an unknown backend', () => {
    expect(() => getUnionFs('aufs')).toThrow(/unknown union backend "aufs": choose one of overlay, fuse/);
  });
});

for (const method of ['fsopen', 'mount'] as const) {
  describe(`overlay backend (${method})`, () => {
    const fs = new OverlayUnionFs({ method });

    it('mounts, merges and unmounts', async () => {
      root = tempDir('unionfs', 'a', 'b', 'u', 'w', 'm');
      writeFileSync(join(root, 'a/x'), 'top');
      writeFileSync(join(root, 'b/x'), 'bottom');
      writeFileSync(join(root, 'b/y'), 'y');
      const m = await fs.mount({
        lower: [join(root, 'a'), join(root, 'b')],
        upper: join(root, 'u'),
        work: join(root, 'w'),
        target: join(root, 'm'),
      });
      expect(m.readonly).toBe(false);
      expect(mountOf(join(root, 'm'))?.fsType).toBe('overlay');
      expect(readFileSync(join(root, 'm/x'), 'utf8')).toBe('top');
      writeFileSync(join(root, 'm/z'), 'new');
      await m.unmount();
      expect(isMountPoint(join(root, 'm'))).toBe(false);
      expect(readFileSync(join(root, 'u/z'), 'utf8')).toBe('new');
    });

    it('mounts one layer read-only and cleans its empty bottom layer on unmount', async () => {
      root = tempDir('unionfs', 'a', 'm');
      writeFileSync(join(root, 'a/x'), 'x');
      const m = await fs.mount({ lower: [join(root, 'a')], target: join(root, 'm') });
      expect(m.readonly).toBe(true);
      expect(readdirSync(join(root, 'm'))).toEqual(['x']);
      expect(() => writeFileSync(join(root, 'm/y'), 'y')).toThrow(/EROFS/);
      await m.unmount();
      expect(readdirSync(root).sort()).toEqual(['a', 'm']);
    });

    it('mounts 300 layers with long paths (past one page of mount data)', async () => {
      root = tempDir('unionfs', 'u', 'w', 'm');
      const layers: string[] = [];
      for (let i = 0; i < 300; i++) {
        const dir = join(root, `a-layer-folder-with-a-long-name-${String(i).padStart(4, '0')}`);
        mkdirSync(dir);
        writeFileSync(join(dir, `f${i}`), String(i));
        writeFileSync(join(dir, 'shared'), String(i));
        layers.push(dir);
      }
      expect(layers.join(':').length).toBeGreaterThan(4096);
      await fs.mount({
        lower: layers,
        upper: join(root, 'u'),
        work: join(root, 'w'),
        target: join(root, 'm'),
      });
      expect(readdirSync(join(root, 'm')).length).toBe(301);
      expect(readFileSync(join(root, 'm/shared'), 'utf8')).toBe('0');
      expect(readFileSync(join(root, 'm/f299'), 'utf8')).toBe('299');
      const options = mountOf(join(root, 'm'))?.superOptions ?? '';
      // mount(2) took short links (0, 1, ... 8b); fsopen one lowerdir+ per layer.
      expect(options).toMatch(method === 'mount' ? /lowerdir=0:1:2:.*:8b,/ : /lowerdir\+=.*0299,upperdir/);
      // No short-link folder is left behind pointing at our layers.
      for (const name of readdirSync(tmpdir()).filter((n) => n.startsWith('corral-unionfs-links-'))) {
        for (const link of readdirSync(join(tmpdir(), name))) {
          expect(readlinkSync(join(tmpdir(), name, link)).startsWith(root)).toBe(false);
        }
      }
      await fs.unmount(join(root, 'm'));
    });

    it('refuses a lower layer that does not exist', async () => {
      root = tempDir('unionfs', 'a', 'u', 'w', 'm');
      await expectUnionError(
        fs.mount({
          lower: [join(root, 'a'), join(root, 'nope')],
          upper: join(root, 'u'),
          work: join(root, 'w'),
          target: join(root, 'm'),
        }),
        'LOWER_MISSING',
        /lower layer .*nope does not exist/,
      );
      expect(isMountPoint(join(root, 'm'))).toBe(false);
    });

    it('refuses an upper on an overlay mount and names the filesystem', async () => {
      root = tempDir('unionfs', 'a', 'u', 'w', 'm', 'm2');
      await fs.mount({
        lower: [join(root, 'a')],
        upper: join(root, 'u'),
        work: join(root, 'w'),
        target: join(root, 'm'),
      });
      mkdirSync(join(root, 'm/u2'));
      mkdirSync(join(root, 'm/w2'));
      await expectUnionError(
        fs.mount({
          lower: [join(root, 'a')],
          upper: join(root, 'm/u2'),
          work: join(root, 'm/w2'),
          target: join(root, 'm2'),
        }),
        'UPPER_UNSUPPORTED',
        /is on overlay, which overlayfs cannot use as an upper layer/,
      );
    });

    it.skipIf(!hasFuseOverlayfs)(
      'refuses an upper on a FUSE mount (fuse-overlayfs) and names it',
      async () => {
        root = tempDir('unionfs', 'a', 'fu', 'fw', 'f', 'm');
        const child = spawn(
          'fuse-overlayfs',
          ['-f', '-o', `lowerdir=${root}/a,upperdir=${root}/fu,workdir=${root}/fw`, join(root, 'f')],
          {
            stdio: 'ignore',
          },
        );
        const exited = new Promise((r) => child.on('exit', r));
        try {
          while (!isMountPoint(join(root, 'f'))) {
            if (child.exitCode !== null) throw new Error('fuse-overlayfs did not mount');
            await new Promise((r) => setTimeout(r, 10));
          }
          mkdirSync(join(root, 'f/u'));
          mkdirSync(join(root, 'f/w'));
          await expectUnionError(
            fs.mount({
              lower: [join(root, 'a')],
              upper: join(root, 'f/u'),
              work: join(root, 'f/w'),
              target: join(root, 'm'),
            }),
            'UPPER_UNSUPPORTED',
            /is on fuse, which overlayfs cannot use as an upper layer/,
          );
        } finally {
          if (isMountPoint(join(root, 'f'))) spawnSync('fusermount3', ['-u', join(root, 'f')]);
          if (child.exitCode === null) await exited;
        }
      },
    );

    it('takes an upper on tmpfs', async () => {
      root = tempDir('unionfs', 'a', 't', 'm');
      writeFileSync(join(root, 'a/x'), 'x');
      mount('corral-test', join(root, 't'), 'tmpfs', MS.NOSUID | MS.NODEV, 'size=4m');
      mkdirSync(join(root, 't/u'));
      mkdirSync(join(root, 't/w'));
      await fs.mount({
        lower: [join(root, 'a')],
        upper: join(root, 't/u'),
        work: join(root, 't/w'),
        target: join(root, 'm'),
      });
      writeFileSync(join(root, 'm/x'), 'changed');
      expect(readFileSync(join(root, 't/u/x'), 'utf8')).toBe('changed');
    });

    it('refuses a mount point already in use', async () => {
      root = tempDir('unionfs', 'a', 'm');
      await fs.mount({ lower: [join(root, 'a')], target: join(root, 'm') });
      await expectUnionError(
        fs.mount({ lower: [join(root, 'a')], target: join(root, 'm') }),
        'MOUNTPOINT_BUSY',
        /already in use \(overlay/,
      );
    });

    it('refuses a missing mount point, and upper without work', async () => {
      root = tempDir('unionfs', 'a', 'u');
      await expectUnionError(
        fs.mount({ lower: [join(root, 'a')], target: join(root, 'none') }),
        'MOUNTPOINT_MISSING',
        /create it first/,
      );
      await expectUnionError(
        fs.mount({ lower: [join(root, 'a')], upper: join(root, 'u'), target: join(root, 'u') }),
        'BAD_OPTIONS',
        /upper and work go together/,
      );
      await expectUnionError(
        fs.mount({ lower: [], target: root }),
        'BAD_OPTIONS',
        /at least one lower layer/,
      );
    });

    it('says when the mount is busy, and detaches on request', async () => {
      root = tempDir('unionfs', 'a', 'u', 'w', 'm');
      writeFileSync(join(root, 'a/x'), 'x');
      await fs.mount({
        lower: [join(root, 'a')],
        upper: join(root, 'u'),
        work: join(root, 'w'),
        target: join(root, 'm'),
      });
      const fd = openSync(join(root, 'm/x'), 'r');
      try {
        await expectUnionError(fs.unmount(join(root, 'm')), 'MOUNTPOINT_BUSY', /detach: true/);
        await fs.unmount(join(root, 'm'), { detach: true });
        expect(isMountPoint(join(root, 'm'))).toBe(false);
      } finally {
        closeSync(fd);
      }
    });

    it('will not unmount what it did not mount', async () => {
      root = tempDir('unionfs', 't');
      await expectUnionError(fs.unmount(join(root, 't')), 'NOT_MOUNTED', /not a mount point/);
      mount('corral-test', join(root, 't'), 'tmpfs', 0, 'size=1m');
      await expectUnionError(fs.unmount(join(root, 't')), 'NOT_MOUNTED', /tmpfs mount, not an overlay/);
      expect(existsSync(join(root, 't'))).toBe(true);
    });
  });
}

describe('overlay backend (auto)', () => {
  it('uses the new mount API with one lowerdir+ per layer on this kernel', async () => {
    root = tempDir('unionfs', 'a', 'b', 'm');
    await new OverlayUnionFs().mount({ lower: [join(root, 'a'), join(root, 'b')], target: join(root, 'm') });
    expect(mountOf(join(root, 'm'))?.superOptions).toContain(`lowerdir+=${join(root, 'a')}`);
  });
});
