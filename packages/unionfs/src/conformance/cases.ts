import { createHash } from 'node:crypto';
import {
  appendFileSync,
  chmodSync,
  closeSync,
  lchownSync,
  linkSync,
  lutimesSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  readSync,
  renameSync,
  rmdirSync,
  rmSync,
  statfsSync,
  symlinkSync,
  truncateSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { lgetxattr, llistxattr, lsetxattr, mknod, S_IF } from '@corral/sys';
import type { Spec } from './layers.js';

/**
 * One conformance case: layers, then operations on the merged tree; what they return is
 * compared. `run` runs in a child process of its own (see child.ts), so that a server in the
 * test's process could not deadlock it, and so that it can run as another user.
 */
export interface Case {
  name: string;
  /** Lower layers, top first. */
  lower: Spec[];
  /** What the upper layer holds before the case starts. */
  upper?: Spec;
  /** Mount without upper and work. */
  readonly?: boolean;
  /** Run the operations as this user instead of root. */
  as?: { uid: number; gid: number };
  run(root: string): unknown;
}

/** Runs `fn` and says how it ended: "ok" or the errno code, so a case can go on past failures. */
export function attempt(fn: () => unknown): string {
  try {
    fn();
    return 'ok';
  } catch (e) {
    return (e as NodeJS.ErrnoException).code ?? String(e);
  }
}

export const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** A deterministic buffer of `size` bytes (not all zeros, so a hole would show). */
export function pattern(size: number, seed: number): Buffer {
  const b = Buffer.alloc(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b.writeUInt32LE(x >>> 0, i);
  }
  return b;
}

const LARGE = 48 * 1024 * 1024;

function deepSpec(depth: number, leaf: Spec): Spec {
  let s: Spec = leaf;
  for (let i = depth - 1; i >= 0; i--) s = { [`d${i}`]: s };
  return s;
}
const deepPath = (depth: number) => Array.from({ length: depth }, (_, i) => `d${i}`).join('/');

/** The cases every backend runs (more in cases-more.ts). */
export const BASE_CASES: Case[] = [
  {
    name: 'lookup through layers; the upper and higher layers take precedence',
    lower: [
      { a: 'top a', dir: { y: 'top y', shared: 'top shared' }, onlyTop: 'T' },
      { a: 'bottom a', b: 'bottom b', dir: { x: 'bottom x', shared: 'bottom shared' }, f2d: 'file below' },
    ],
    upper: { b: 'upper b', dir: { x: 'upper x' }, f2d: { z: 'dir above' } },
    run: (root) => ({
      a: readFileSync(join(root, 'a'), 'utf8'),
      b: readFileSync(join(root, 'b'), 'utf8'),
      x: readFileSync(join(root, 'dir/x'), 'utf8'),
      shared: readFileSync(join(root, 'dir/shared'), 'utf8'),
      missing: attempt(() => readFileSync(join(root, 'dir/none'))),
      f2d: readdirSync(join(root, 'f2d')),
    }),
  },
  {
    name: 'readdir merges layers without duplicates and hides whiteouts',
    lower: [
      { dir: { a: '1', gone: { $whiteout: true }, c: '3' }, opq: { $dir: { new: 'n' }, opaque: true } },
      { dir: { a: '0', b: '2', gone: 'x', d: { e: 'e' } }, opq: { old1: 'o', old2: 'o' } },
    ],
    upper: { dir: { b: 'u', f: 'f', d: { $whiteout: true } } },
    run: (root) => {
      const raw = readdirSync(join(root, 'dir'));
      return {
        dir: [...raw].sort(),
        duplicates: raw.length - new Set(raw).size,
        opq: readdirSync(join(root, 'opq')).sort(),
        rootNames: readdirSync(root).sort(),
      };
    },
  },
  {
    name: 'create, write, truncate, append',
    lower: [{ keep: 'keep', w: 'write me', t: 'truncate me please', ap: 'append to ' }, { grow: 'x' }],
    run: (root) => {
      writeFileSync(join(root, 'new'), 'a new file');
      mkdirSync(join(root, 'newdir'));
      writeFileSync(join(root, 'newdir/inner'), 'inner');
      writeFileSync(join(root, 'w'), 'rewritten');
      truncateSync(join(root, 't'), 5);
      appendFileSync(join(root, 'ap'), 'the end');
      truncateSync(join(root, 'grow'), 10_000);
      const fd = openSync(join(root, 'keep'), 'r+');
      writeSync(fd, 'K', 0);
      closeSync(fd);
      return { excl: attempt(() => writeFileSync(join(root, 'new'), 'again', { flag: 'wx' })) };
    },
  },
  {
    name: 'copy-up of a large file keeps every byte',
    lower: [{ big: { $file: pattern(LARGE, 7), mode: 0o640 } }, {}],
    run: (root) => {
      const fd = openSync(join(root, 'big'), 'r+');
      writeSync(fd, Buffer.from('middle'), 0, 6, LARGE / 2);
      closeSync(fd);
      return { sha: sha(readFileSync(join(root, 'big'))) };
    },
  },
  {
    name: 'copy-up keeps xattrs, and xattrs set through the union land in upper',
    lower: [
      {
        x: { $file: 'with xattrs', xattrs: { 'user.one': '1', 'user.two': 'second value' } },
        xd: { $dir: { inside: 'i' }, xattrs: { 'user.dir': 'd' } },
      },
      { y: { $file: 'plain' } },
    ],
    run: (root) => {
      chmodSync(join(root, 'x'), 0o600); // metadata change: copy-up
      writeFileSync(join(root, 'xd/inside'), 'changed'); // copies up the folder too
      lsetxattr(join(root, 'y'), 'user.added', 'through the union');
      return {
        x: llistxattr(join(root, 'x')).sort(),
        one: lgetxattr(join(root, 'x'), 'user.one')?.toString(),
        y: lgetxattr(join(root, 'y'), 'user.added')?.toString(),
      };
    },
  },
  {
    name: 'chmod, chown and utimes of lower files, folders and symlinks',
    lower: [{ f: 'file', d: { inner: 'i' }, l: { $symlink: 'f' } }, { g: { $file: 'g', mode: 0o4755 } }],
    run: (root) => {
      chmodSync(join(root, 'f'), 0o751);
      lchownSync(join(root, 'f'), 1234, 5678);
      chmodSync(join(root, 'd'), 0o700);
      lchownSync(join(root, 'l'), 42, 43);
      utimesSync(join(root, 'd/inner'), new Date('1999-05-05T00:00:00Z'), new Date('1999-06-06T00:00:00Z'));
      lutimesSync(join(root, 'l'), new Date('1998-01-01T00:00:00Z'), new Date('1998-02-02T00:00:00Z'));
      // chown clears set-user-ID, as on any filesystem.
      lchownSync(join(root, 'g'), 1, 1);
      return {};
    },
  },
  {
    name: 'copy-up keeps owner, mode and times',
    lower: [
      {
        owned: { $file: 'owned', uid: 1000, gid: 2000, mode: 0o4750 },
        d: { $dir: { f: { $file: 'in a private folder', uid: 7, gid: 8 } }, mode: 0o710 },
      },
      {},
    ],
    run: (root) => {
      const fd = openSync(join(root, 'owned'), 'r+');
      writeSync(fd, 'O', 0); // the copy must keep owner and mode as the kernel does (set-user-ID too)
      closeSync(fd);
      appendFileSync(join(root, 'd/f'), '!');
      return {};
    },
  },
  {
    name: 'an upper layer made before (whiteouts, opaque folders) is honoured',
    lower: [
      { a: 'a', b: 'b', d: { x: 'x', y: 'y' } },
      { c: 'c', e: { z: 'z' } },
    ],
    upper: {
      b: { $whiteout: true },
      d: { $dir: { y: 'upper y' }, opaque: true },
      e: { $whiteout: true },
      f: 'f',
    },
    run: (root) => {
      const before = readdirSync(root).sort();
      const dBefore = readdirSync(join(root, 'd')).sort();
      writeFileSync(join(root, 'b'), 'b again');
      mkdirSync(join(root, 'e'));
      writeFileSync(join(root, 'd/x'), 'x again');
      return { before, dBefore, e: readdirSync(join(root, 'e')) };
    },
  },
  {
    name: 'unlink and rmdir of lower entries leave whiteouts',
    lower: [
      { f: 'f', empty: {}, full: { a: 'a', sub: { b: 'b' } }, l: { $symlink: 'nowhere' } },
      { g: 'g', both: { x: 'x' } },
    ],
    upper: { u: 'only upper', both: {} },
    run: (root) => ({
      f: attempt(() => unlinkSync(join(root, 'f'))),
      g: attempt(() => unlinkSync(join(root, 'g'))),
      u: attempt(() => unlinkSync(join(root, 'u'))),
      l: attempt(() => unlinkSync(join(root, 'l'))),
      empty: attempt(() => rmdirSync(join(root, 'empty'))),
      fullRmdir: attempt(() => rmdirSync(join(root, 'full'))),
      fullRm: attempt(() => rmSync(join(root, 'full'), { recursive: true })),
      bothRmdir: attempt(() => rmdirSync(join(root, 'both'))),
      again: attempt(() => unlinkSync(join(root, 'f'))),
    }),
  },
  {
    name: 'a folder removed and made again is opaque',
    lower: [{ d: { a: 'a', sub: { b: 'b' } } }, { d: { c: 'c' }, e: { x: 'x' } }],
    run: (root) => {
      rmSync(join(root, 'd'), { recursive: true });
      mkdirSync(join(root, 'd'));
      writeFileSync(join(root, 'd/new'), 'new');
      rmSync(join(root, 'e'), { recursive: true });
      writeFileSync(join(root, 'e'), 'a file where a folder was');
      return { d: readdirSync(join(root, 'd')).sort(), e: readFileSync(join(root, 'e'), 'utf8') };
    },
  },
  {
    name: 'rename of files and folders (EXDEV for lower folders, no redirects)',
    lower: [
      { f: 'f', target: 'old target', ld: { x: 'x' }, merged: { m: 'm' } },
      { g: 'g', merged: { n: 'n' } },
    ],
    upper: { ud: { y: 'y' } },
    run: (root) => ({
      file: attempt(() => renameSync(join(root, 'f'), join(root, 'f2'))),
      over: attempt(() => renameSync(join(root, 'g'), join(root, 'target'))),
      lowerDir: attempt(() => renameSync(join(root, 'ld'), join(root, 'ld2'))),
      mergedDir: attempt(() => renameSync(join(root, 'merged'), join(root, 'merged2'))),
      upperDir: attempt(() => renameSync(join(root, 'ud'), join(root, 'ud2'))),
      intoDir: attempt(() => renameSync(join(root, 'f2'), join(root, 'ld/f3'))),
      newDir: attempt(() => {
        mkdirSync(join(root, 'nd'));
        writeFileSync(join(root, 'nd/z'), 'z');
        renameSync(join(root, 'nd'), join(root, 'nd2'));
      }),
    }),
  },
  {
    name: 'symlinks and hard links',
    lower: [
      { l: { $symlink: 'target' }, target: 'T', h1: 'hard', h2: { $link: 'h1' } },
      { abs: { $symlink: '/etc/hostname' } },
    ],
    run: (root) => {
      symlinkSync('../somewhere', join(root, 'newlink'));
      writeFileSync(join(root, 'orig'), 'o');
      linkSync(join(root, 'orig'), join(root, 'orig2'));
      const lowerLink = attempt(() => linkSync(join(root, 'target'), join(root, 'target2')));
      appendFileSync(join(root, 'h1'), ' changed');
      return {
        l: readlinkSync(join(root, 'l')),
        abs: readlinkSync(join(root, 'abs')),
        lowerLink,
        h2: readFileSync(join(root, 'h2'), 'utf8'),
      };
    },
  },
  {
    name: 'mknod of fifos',
    lower: [{ p: { $fifo: true } }, {}],
    run: (root) => {
      mknod(join(root, 'fifo'), S_IF.FIFO | 0o640, 0);
      chmodSync(join(root, 'p'), 0o600);
      return { exists: attempt(() => mknod(join(root, 'fifo'), S_IF.FIFO | 0o640, 0)) };
    },
  },
  {
    // A union reports the space of its upper layer's filesystem. Its type is the backend's
    // (overlayfs's magic, or FUSE's: the kernel sets it), so only that it is one is compared.
    name: 'statfs',
    lower: [{ a: 'a' }, { b: 'b' }],
    run: (root) => {
      const s = statfsSync(root);
      const below = statfsSync(dirname(root));
      return {
        union: ['794c7630', '65735546'].includes(s.type.toString(16)),
        bsize: s.bsize,
        blocks: s.blocks === below.blocks,
        files: s.files === below.files,
      };
    },
  },
  {
    name: 'a file open across a copy-up',
    lower: [{ f: 'before the copy-up' }, {}],
    run: (root) => {
      const ro = openSync(join(root, 'f'), 'r');
      const buf = Buffer.alloc(64);
      const first = buf.subarray(0, readSync(ro, buf, 0, 6, 0)).toString();
      writeFileSync(join(root, 'f'), 'after the copy-up!');
      const again = buf.subarray(0, readSync(ro, buf, 0, 64, 0)).toString();
      closeSync(ro);
      return { first, again };
    },
  },
  {
    name: 'deep trees',
    lower: [deepSpec(48, { leaf: 'deep leaf', other: 'o' }), deepSpec(24, { mid: 'middle' })],
    run: (root) => {
      const deep = join(root, deepPath(48));
      writeFileSync(join(deep, 'leaf'), 'changed deep leaf');
      const fresh = join(root, 'fresh', deepPath(40));
      mkdirSync(fresh, { recursive: true });
      writeFileSync(join(fresh, 'x'), 'x');
      rmSync(join(root, deepPath(24), 'mid'));
      return { depth: readFileSync(join(deep, 'other'), 'utf8') };
    },
  },
  {
    name: 'read-only mount refuses writes',
    lower: [
      { a: 'a', d: { x: 'x' } },
      { b: 'b', gone: 'g' },
    ],
    readonly: true,
    run: (root) => ({
      read: readFileSync(join(root, 'a'), 'utf8'),
      write: attempt(() => writeFileSync(join(root, 'a'), 'no')),
      create: attempt(() => writeFileSync(join(root, 'new'), 'no')),
      unlink: attempt(() => unlinkSync(join(root, 'b'))),
      mkdir: attempt(() => mkdirSync(join(root, 'nd'))),
    }),
  },
];
