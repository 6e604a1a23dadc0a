import {
  closeSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { removeTree, tempDir } from '@corral/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import {
  close,
  DirFd,
  fdPath,
  MNT,
  makedev,
  mknod,
  mount,
  O,
  openat2,
  openInRoot,
  openRoot,
  RESOLVE,
  readFileInRoot,
  S_IF,
  umount2,
  walkInRoot,
} from '../src/index.js';

const top = tempDir('inroot');
afterAll(() => removeTree(top));

/** A host folder outside every root, with a file whose content must never be read. */
const canary = join(top, 'canary');
mkdirSync(canary);
writeFileSync(join(canary, 'passwd'), 'leaked:x:4242:4242::/:/bin/sh\n');

/** A root whose links point out of it, the way a hostile image would. */
function hostileRoot(name: string): string {
  const root = join(top, name);
  mkdirSync(join(root, 'etc'), { recursive: true });
  mkdirSync(join(root, 'dev'));
  writeFileSync(join(root, 'etc/group'), 'root:x:0:\n');
  symlinkSync(canary, join(root, 'hostdir')); // absolute: the host's canary folder
  symlinkSync('../../../../../../..', join(root, 'up'));
  symlinkSync(join(canary, 'passwd'), join(root, 'etc/passwd'));
  symlinkSync('/dev/zero', join(root, 'etc/zero'));
  symlinkSync('/proc/self/root/etc/hostname', join(root, 'etc/magic'));
  symlinkSync('loop2', join(root, 'loop1'));
  symlinkSync('loop1', join(root, 'loop2'));
  return root;
}

/** Where an fd really is, as the host names it. */
function whereIs(fd: number): string {
  try {
    return readlinkSync(fdPath(fd));
  } finally {
    close(fd);
  }
}

const resolvers = {
  openat2: openInRoot,
  'the safe walk (kernels without openat2)': walkInRoot,
};

describe.each(Object.entries(resolvers))('resolving inside a root with %s', (_, resolve) => {
  const root = hostileRoot(`root-${resolve.name}`);
  const rootfd = openRoot(root);
  afterAll(() => close(rootfd));
  const open = (path: string, flags = O.PATH) => resolve(rootfd, path, flags);
  const code = (f: () => unknown) => {
    try {
      f();
      return 'ok';
    } catch (e) {
      return (e as { code?: string }).code;
    }
  };

  it('keeps symlinks and .. inside the root', () => {
    expect(whereIs(open('/etc/group'))).toBe(join(root, 'etc/group'));
    expect(whereIs(open('../../../etc/group'))).toBe(join(root, 'etc/group'));
    expect(whereIs(open('up/etc/group'))).toBe(join(root, 'etc/group'));
    expect(whereIs(open('up'))).toBe(root);
    // The host's canary folder is not what hostdir leads to: it leads to <root><canary>.
    expect(code(() => open('hostdir/passwd'))).toBe('ENOENT');
    expect(code(() => open('etc/passwd'))).toBe('ENOENT');
    expect(code(() => open('loop1'))).toBe('ELOOP');
    expect(code(() => open('etc/group/x'))).toBe('ENOTDIR');
    expect(code(() => open('etc/group', O.PATH | O.DIRECTORY))).toBe('ENOTDIR');
  });

  it('refuses a final symlink with O_NOFOLLOW, and opens it itself with O_PATH', () => {
    expect(code(() => open('etc/passwd', O.RDONLY | O.NOFOLLOW))).toBe('ELOOP');
    expect(whereIs(open('etc/passwd', O.PATH | O.NOFOLLOW))).toBe(join(root, 'etc/passwd'));
  });

  it('creates missing folders and files beneath the root, through links too', () => {
    close(resolve(rootfd, 'hostdir/made/deep', O.PATH, { create: 'dir' }));
    close(resolve(rootfd, 'hostdir/file', O.PATH, { create: 'file' }));
    expect(existsSync(join(root, canary, 'made/deep'))).toBe(true);
    expect(existsSync(join(root, canary, 'file'))).toBe(true);
    expect(existsSync(join(canary, 'made'))).toBe(false);
    expect(existsSync(join(canary, 'file'))).toBe(false);
  });
});

describe('openat2', () => {
  it('refuses magic links with RESOLVE_NO_MAGICLINKS', () => {
    const root = hostileRoot('magic');
    mkdirSync(join(root, 'proc'));
    mount('proc', join(root, 'proc'), 'proc', 0);
    const rootfd = openRoot(root);
    try {
      expect(() => openInRoot(rootfd, 'etc/magic', O.PATH)).toThrow(/ELOOP|EXDEV/);
    } finally {
      close(rootfd);
      umount2(join(root, 'proc'), MNT.DETACH);
    }
  });

  it('passes struct open_how as the kernel reads it', () => {
    const fd = openat2(-100, top, { flags: O.PATH | O.DIRECTORY, resolve: RESOLVE.NO_SYMLINKS });
    expect(whereIs(fd)).toBe(top);
    expect(() =>
      openat2(-100, join(top, 'root-openInRoot/up'), { flags: O.PATH, resolve: RESOLVE.NO_SYMLINKS }),
    ).toThrow(/ELOOP/);
  });
});

describe('readFileInRoot', () => {
  const root = hostileRoot('read');
  const rootfd = openRoot(root);
  afterAll(() => close(rootfd));

  it('reads the root’s own file and never the host’s', () => {
    expect(readFileInRoot(rootfd, '/etc/group')?.toString()).toBe('root:x:0:\n');
    expect(readFileInRoot(rootfd, '/etc/passwd')).toBeNull();
    mkdirSync(join(root, canary), { recursive: true });
    writeFileSync(join(root, canary, 'passwd'), 'own:x:1:1::/:/bin/sh\n');
    expect(readFileInRoot(rootfd, '/etc/passwd')?.toString()).toBe('own:x:1:1::/:/bin/sh\n');
  });

  it('refuses a FIFO, a device and an oversized file without hanging', () => {
    expect(readFileInRoot(rootfd, '/etc/zero')).toBeNull(); // /dev/zero of the root: absent
    mknod(join(root, 'dev/zero'), S_IF.CHR | 0o666, makedev(1, 5));
    expect(() => readFileInRoot(rootfd, '/etc/zero')).toThrow('not a regular file');
    rmSync(join(root, 'dev/zero'));
    mknod(join(root, 'dev/zero'), S_IF.FIFO | 0o666);
    expect(() => readFileInRoot(rootfd, '/etc/zero')).toThrow('not a regular file');
    writeFileSync(join(root, 'etc/big'), Buffer.alloc(100));
    expect(() => readFileInRoot(rootfd, '/etc/big', 99)).toThrow('larger than 99 bytes');
    expect(readFileInRoot(rootfd, '/etc/big', 100)?.length).toBe(100);
  });
});

describe('DirFd', () => {
  it('reaches entries through the folder it holds, not through a path', () => {
    const dir = join(top, 'walk');
    mkdirSync(join(dir, 'sub'), { recursive: true });
    writeFileSync(join(dir, 'sub/f'), 'inside');
    const d = DirFd.open(dir);
    const sub = d.dir('sub');
    // The folder is swapped for a symlink to the canary: the fd still holds the old folder.
    rmSync(join(dir, 'sub'), { recursive: true });
    symlinkSync(canary, join(dir, 'sub'));
    expect(sub.names()).toEqual([]);
    expect(() => sub.lstat('passwd')).toThrow(/ENOENT/);
    expect(() => d.dir('sub')).toThrow(/ELOOP|ENOTDIR/);
    expect(d.file('sub')).toBeNull();
    expect(d.lstat('sub').isSymbolicLink()).toBe(true);
    expect(() => d.at('../x')).toThrow(/not a single file name/);
    mknod(join(dir, 'fifo'), S_IF.FIFO | 0o600);
    expect(d.file('fifo')).toBeNull();
    writeFileSync(join(dir, 'reg'), 'r');
    const f = d.file('reg')!;
    expect(readFileSync(f.fd, 'utf8')).toBe('r');
    closeSync(f.fd);
    sub.close();
    d.close();
  });
});
