// Cases about inodes: hard links in upper are one inode (one lock, one inode number, the
// right link count), and inode numbers stay what they were across lookups, also after the
// kernel has forgotten the inode (its dentries reclaimed) and looked the name up again.
import { spawnSync } from 'node:child_process';
import {
  appendFileSync,
  closeSync,
  existsSync,
  fchmodSync,
  constants as fsConstants,
  fstatSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmdirSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { AT, flock, LOCK, rawFlistxattr, rawFremovexattr, rawFsetxattr, rawLinkat } from '@corral/sys';
import type { Case } from './cases.js';

/** The memory cgroup (v1) this process is in, as a folder, or null. */
function ownMemcg(): string | null {
  for (const line of readFileSync('/proc/self/cgroup', 'utf8').split('\n')) {
    const [, controllers, path] = line.split(':');
    if (controllers?.split(',').includes('memory')) {
      const dir = join('/sys/fs/cgroup/memory', path ?? '/');
      return existsSync(join(dir, 'memory.force_empty')) ? dir : null;
    }
  }
  return null;
}

/**
 * Runs `script` (sh) in a memory cgroup of its own, then reclaims that cgroup's memory: the
 * dentries and inodes its lookups made are dropped, so the union's inodes are evicted (a FUSE
 * server gets FORGET). Without a v1 memory cgroup it only runs the script. Returns its stdout.
 */
function runThenReclaim(script: string): string {
  const parent = ownMemcg();
  const cg = parent ? join(parent, `corral-conf-forget-${process.pid}`) : null;
  if (cg) mkdirSync(cg);
  try {
    const join_ = cg ? `echo $$ > ${cg}/cgroup.procs; ` : '';
    const r = spawnSync('sh', ['-c', `${join_}${script}`], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`sh: ${r.stderr}`);
    if (cg) writeFileSync(join(cg, 'memory.force_empty'), '0');
    return r.stdout;
  } finally {
    if (cg) rmdirSync(cg);
  }
}

const ino = (p: string) => lstatSync(p).ino;

/** Whether two paths are one inode for locks: a second exclusive flock fails. */
function oneLock(a: string, b: string): boolean {
  const fa = openSync(a, 'r');
  const fb = openSync(b, 'r');
  try {
    flock(fa, LOCK.EX | LOCK.NB);
    return !flock(fb, LOCK.EX | LOCK.NB);
  } finally {
    closeSync(fa);
    closeSync(fb);
  }
}

const O_TMPFILE = 0o20200000;
const AT_EMPTY_PATH = 0x1000;
const Z = Buffer.from([0]);

export const INODE_CASES: Case[] = [
  {
    name: 'O_TMPFILE: a nameless file, written, its xattrs set and removed, then linked in by its fd or dropped',
    lower: [{ d: { old: 'old' } }, {}],
    run: (root) => {
      const dir = join(root, 'd');
      const fd = openSync(dir, O_TMPFILE | fsConstants.O_RDWR, 0o640);
      writeSync(fd, 'tmp data');
      fchmodSync(fd, 0o600);
      const out: Record<string, unknown> = { nlinkBefore: fstatSync(fd).nlink };
      // xattrs of the nameless file: set two, remove one (the other is linked in with it).
      const cz = (t: string) => Buffer.from(`${t}\0`);
      out.xattrs = [
        rawFsetxattr(fd, cz('user.gone'), Buffer.from('1'), 0),
        rawFsetxattr(fd, cz('user.kept'), Buffer.from('2'), 0),
        rawFremovexattr(fd, cz('user.gone')),
        rawFremovexattr(fd, cz('user.never')),
      ];
      const list = Buffer.alloc(256);
      out.xattrList = list.subarray(0, Math.max(0, rawFlistxattr(fd, list))).toString('latin1');
      out.link = rawLinkat(fd, Z, AT.FDCWD, Buffer.from(`${dir}/linked\0`), AT_EMPTY_PATH);
      out.nlinkAfter = fstatSync(fd).nlink;
      out.sameIno = fstatSync(fd).ino === lstatSync(join(dir, 'linked')).ino;
      closeSync(fd);
      out.read = readFileSync(join(dir, 'linked'), 'utf8');
      // O_EXCL: never to be linked.
      const excl = openSync(dir, O_TMPFILE | fsConstants.O_RDWR | fsConstants.O_EXCL, 0o600);
      out.excl = rawLinkat(excl, Z, AT.FDCWD, Buffer.from(`${dir}/linked2\0`), AT_EMPTY_PATH);
      closeSync(excl);
      // Closed unlinked: gone, nothing left in upper or work.
      const dropped = openSync(root, O_TMPFILE | fsConstants.O_RDWR, 0o600);
      writeSync(dropped, 'dropped');
      closeSync(dropped);
      return out;
    },
  },
  {
    name: 'hard links in upper are one inode',
    lower: [{ f: 'lower file', h1: 'hard', h2: { $link: 'h1' }, d: {} }, {}],
    upper: { u1: 'upper', u2: { $link: 'u1' }, u3: 'third' },
    run: (root) => {
      const p = (n: string) => join(root, n);
      const out: Record<string, unknown> = {};
      // Both names looked up, then forgotten by the kernel.
      const seen = runThenReclaim(`stat -c '%i %h' ${p('u1')} ${p('u2')}`)
        .trim()
        .split('\n');
      out.forgotten = { same: seen[0] === seen[1], again: seen[0] === `${ino(p('u2'))} 2` };
      // Links made in upper before the mount.
      out.before = { sameIno: ino(p('u1')) === ino(p('u2')), nlink: lstatSync(p('u1')).nlink };
      out.beforeLock = oneLock(p('u1'), p('u2'));
      // A link made through the mount, from a lower file (copied up first) and an upper one.
      linkSync(p('f'), p('d/f2'));
      linkSync(p('u3'), p('u3b'));
      linkSync(p('u3'), p('d/u3c'));
      out.made = {
        sameIno: ino(p('f')) === ino(p('d/f2')),
        nlink: [lstatSync(p('f')).nlink, lstatSync(p('d/f2')).nlink, lstatSync(p('u3')).nlink],
        lock: oneLock(p('f'), p('d/f2')),
        lock3: oneLock(p('u3b'), p('d/u3c')),
      };
      appendFileSync(p('d/f2'), ' through the other name');
      out.shared = readFileSync(p('f'), 'utf8');
      // Removing names: the others stay, with the count down.
      unlinkSync(p('u3'));
      out.afterUnlink = {
        nlink: lstatSync(p('u3b')).nlink,
        read: readFileSync(p('d/u3c'), 'utf8'),
        sameIno: ino(p('u3b')) === ino(p('d/u3c')),
      };
      // A rename of one link onto another of the same inode does nothing.
      renameSync(p('u1'), p('u2'));
      out.renameSame = { u1: existsSync(p('u1')), u2: existsSync(p('u2')) };
      renameSync(p('u3b'), p('d/moved'));
      out.renamed = { nlink: lstatSync(p('d/moved')).nlink, sameIno: ino(p('d/moved')) === ino(p('d/u3c')) };
      // Lower hard links are broken by a copy-up, as in overlayfs.
      const h1 = ino(p('h1'));
      const h = h1 === ino(p('h2'));
      appendFileSync(p('h1'), ' changed');
      out.lowerLinks = {
        before: h,
        h2: readFileSync(p('h2'), 'utf8'),
        nlink: lstatSync(p('h1')).nlink,
        // overlayfs shows the copy's own number then: the lower one is h2's still.
        keptIno: ino(p('h1')) === h1,
      };
      return out;
    },
  },
  {
    name: 'inode numbers stay the same across copy-up and after the kernel forgot the inode',
    lower: [{ f: 'lower file', g: 'other', d: { e: 'in a folder' }, l: { $symlink: 'f' } }, {}],
    upper: { u: 'upper file' },
    run: (root) => {
      const p = (n: string) => join(root, n);
      const names = ['f', 'g', 'd', 'd/e', 'l', 'u'];
      // First looked up in a cgroup whose memory is then reclaimed: the inodes are forgotten.
      const first = runThenReclaim(
        `stat -c %i ${names.map((n) => p(n)).join(' ')}; echo x >> ${p('f')}; echo y >> ${p('d/e')}; stat -c %i ${p('f')} ${p('d/e')}`,
      )
        .trim()
        .split('\n')
        .map(Number);
      const before = first.slice(0, names.length);
      const afterCopyUp = first.slice(names.length);
      const later = names.map((n) => ino(p(n)));
      writeFileSync(p('g'), 'copied up now');
      mkdirSync(p('new'));
      return {
        copyUpKeeps: afterCopyUp[0] === before[0] && afterCopyUp[1] === before[3],
        afterForget: names.map((n, k) => [n, later[k] === before[k]]),
        again: ino(p('g')) === before[1] && ino(p('f')) === before[0],
        distinct: new Set([...later, ino(p('new'))]).size === names.length + 1,
      };
    },
  },
];
