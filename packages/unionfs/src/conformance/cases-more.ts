// Cases beyond single-process basics: another user's permission checks, several writers at
// once, mmap, renames over folders.
import { spawn } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { MAP, mapFile, PROT } from '@corral/sys';
import { attempt, BASE_CASES, type Case, pattern, sha } from './cases.js';
import { ACL_CASES } from './cases-acl.js';
import { INODE_CASES } from './cases-inodes.js';

const U = 1000;
const G = 1000;

/** One writer process of the concurrent case: its own files, a slice of a shared file, renames. */
const WRITER = `
const fs = require('node:fs');
const [root, k] = [process.argv[1], Number(process.argv[2])];
const chunk = Buffer.alloc(4096, 65 + k);
const fd = fs.openSync(root + '/own' + k, 'w');
for (let i = 0; i < 256; i++) fs.writeSync(fd, chunk);
fs.closeSync(fd);
const shared = fs.openSync(root + '/shared', 'r+');
for (let i = 0; i < 16; i++) fs.writeSync(shared, chunk, 0, 4096, k * 65536 + i * 4096);
fs.closeSync(shared);
for (let j = 0; j < 40; j++) fs.writeFileSync(root + '/many/c' + k + '-' + j, 'file ' + k + ' ' + j);
for (let j = 0; j < 40; j += 2) fs.renameSync(root + '/many/c' + k + '-' + j, root + '/many/r' + k + '-' + j);
for (let j = 1; j < 40; j += 4) fs.unlinkSync(root + '/many/c' + k + '-' + j);
`;

function writer(root: string, k: number): Promise<number | null> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, ['-e', WRITER, root, String(k)], { stdio: 'inherit' });
    p.on('exit', (code) => resolve(code));
  });
}

export const MORE_CASES: Case[] = [
  {
    name: 'permission checks as a non-root user',
    lower: [
      {
        secret: { $file: 'root only', mode: 0o600 },
        shared: { $file: 'others may read', mode: 0o644 },
        rootdir: { $dir: { f: 'f' }, mode: 0o755 },
        open: { $dir: { theirs: { $file: 'theirs', uid: 1001, gid: 1001 } }, mode: 0o1777 },
        mine: { $file: 'mine', uid: U, gid: G, mode: 0o600 },
        gdir: { $dir: {}, mode: 0o2777, gid: 50 },
      },
      {},
    ],
    as: { uid: U, gid: G },
    run: (root) => {
      const p = (n: string) => join(root, n);
      const out = {
        readSecret: attempt(() => readFileSync(p('secret'))),
        readShared: attempt(() => readFileSync(p('shared'))),
        writeShared: attempt(() => writeFileSync(p('shared'), 'no')),
        createInRootdir: attempt(() => writeFileSync(p('rootdir/new'), 'no')),
        renameInRootdir: attempt(() => renameSync(p('rootdir/f'), p('rootdir/g'))),
        createInOpen: attempt(() => writeFileSync(p('open/mine'), 'mine')),
        unlinkTheirs: attempt(() => unlinkSync(p('open/theirs'))),
        chmodShared: attempt(() => chmodSync(p('shared'), 0o666)),
        utimesShared: attempt(() => utimesSync(p('shared'), new Date(0), new Date(0))),
        chmodMine: attempt(() => chmodSync(p('mine'), 0o640)),
        appendMine: attempt(() => writeFileSync(p('mine'), ' and more', { flag: 'a' })),
        inGdir: attempt(() => writeFileSync(p('gdir/x'), 'group 50')),
        dirInGdir: attempt(() => mkdirSync(p('gdir/sub'))),
      };
      return out;
    },
  },
  {
    name: 'concurrent writers',
    lower: [{ shared: pattern(4 * 65536, 3), many: { old: 'old' } }, { below: 'b' }],
    run: async (root) => {
      const codes = await Promise.all([0, 1, 2, 3].map((k) => writer(root, k)));
      return { codes };
    },
  },
  {
    name: 'mmap reads and writes',
    lower: [{ big: pattern(1 << 20, 5), ro: pattern(65536, 9) }, {}],
    run: (root) => {
      const fd = openSync(join(root, 'big'), 'r+');
      const m = mapFile(fd, 1 << 20, PROT.READ | PROT.WRITE, MAP.SHARED);
      const before = sha(Buffer.from(m.bytes.subarray(0, 4096)));
      for (let off = 0; off < 1 << 20; off += 100_003) m.bytes.write('through the mapping', off);
      m.sync();
      m.unmap();
      closeSync(fd);
      const rfd = openSync(join(root, 'ro'), 'r');
      const r = mapFile(rfd, 65536, PROT.READ, MAP.PRIVATE);
      const ro = sha(Buffer.from(r.bytes));
      r.unmap();
      closeSync(rfd);
      return { before, ro, after: sha(readFileSync(join(root, 'big'))) };
    },
  },
  {
    name: 'rename over an existing folder',
    lower: [{ ld: { a: 'a' }, empty: {}, full: { x: 'x' }, wh: { y: 'y' } }, {}],
    upper: { ud: { u: 'u' }, ue: {}, ue2: {} },
    run: (root) => {
      const p = (n: string) => join(root, n);
      mkdirSync(p('nd'));
      writeFileSync(p('nd/f'), 'f');
      const overUpper = attempt(() => renameSync(p('nd'), p('ue')));
      const overLowerEmpty = attempt(() => renameSync(p('ud'), p('empty')));
      const overFull = attempt(() => renameSync(p('ue2'), p('full')));
      const lowerOver = attempt(() => renameSync(p('ld'), p('ue2')));
      rmSync(p('wh/y'));
      mkdirSync(p('m'));
      writeFileSync(p('m/z'), 'z');
      const overWhiteouts = attempt(() => renameSync(p('m'), p('wh')));
      const fileOverDir = attempt(() => renameSync(p('wh/z'), p('ue2')));
      return { overUpper, overLowerEmpty, overFull, lowerOver, overWhiteouts, fileOverDir };
    },
  },
];

export const CASES: Case[] = [...BASE_CASES, ...MORE_CASES, ...INODE_CASES, ...ACL_CASES];
