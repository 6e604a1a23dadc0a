// POSIX ACLs (system.posix_acl_access and _default xattrs) as the kernel enforces them
// through the union, for a user other than root: granted and denied by named-user entries,
// inherited from a folder's default ACL (the umask then does not apply), also by entries made
// where a lower one was deleted (over a whiteout), set by an owner.
import { lstatSync, mkdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { lgetxattr, lsetxattr } from '@corral/sys';
import { attempt, type Case } from './cases.js';

const U = 1000;
const G = 1000;
const ACCESS = 'system.posix_acl_access';
const DEFAULT = 'system.posix_acl_default';
const TAG = { USER_OBJ: 1, USER: 2, GROUP_OBJ: 4, MASK: 0x10, OTHER: 0x20 } as const;
const NO_ID = 0xffffffff;

/** An ACL in the xattr format (version 2, entries sorted by tag, then id). */
export function acl(entries: [number, number, number?][]): Buffer {
  const b = Buffer.alloc(4 + 8 * entries.length);
  b.writeUInt32LE(2, 0);
  entries.forEach(([tag, perm, id], k) => {
    b.writeUInt16LE(tag, 4 + 8 * k);
    b.writeUInt16LE(perm, 6 + 8 * k);
    b.writeUInt32LE(id ?? NO_ID, 8 + 8 * k);
  });
  return b;
}

/** user::PERM, user:1000:NAMED, group::GROUP, mask::MASK, other::OTHER. */
const withUser = (owner: number, named: number, group: number, mask: number, other: number) =>
  acl([
    [TAG.USER_OBJ, owner],
    [TAG.USER, named, U],
    [TAG.GROUP_OBJ, group],
    [TAG.MASK, mask],
    [TAG.OTHER, other],
  ]);

export const ACL_CASES: Case[] = [
  {
    name: 'POSIX ACLs are enforced for a non-root user, inherited and set through the union',
    lower: [
      {
        // 0600 root's, but user 1000 may read.
        granted: { $file: 'granted', mode: 0o600, xattrs: { [ACCESS]: withUser(6, 4, 0, 4, 0) } },
        // 0644, but user 1000 may not.
        denied: { $file: 'denied', mode: 0o644, xattrs: { [ACCESS]: withUser(6, 0, 4, 4, 4) } },
        // Root's folder where user 1000 may create, with a default ACL for what is made in it.
        shared: {
          $dir: { old: 'old' },
          mode: 0o755,
          xattrs: { [ACCESS]: withUser(7, 7, 5, 7, 5), [DEFAULT]: withUser(7, 7, 5, 7, 5) },
        },
        open: { $dir: {}, mode: 0o1777 },
      },
      {},
    ],
    as: { uid: U, gid: G },
    run: (root) => {
      process.umask(0o022);
      const p = (n: string) => join(root, n);
      const aclOf = (n: string) => lgetxattr(p(n), ACCESS)?.toString('hex') ?? null;
      const out: Record<string, unknown> = {
        readGranted: attempt(() => readFileSync(p('granted'))),
        writeGranted: attempt(() => writeFileSync(p('granted'), 'no')),
        readDenied: attempt(() => readFileSync(p('denied'))),
        createInShared: attempt(() => writeFileSync(p('shared/mine'), 'mine', { mode: 0o666 })),
        mkdirInShared: attempt(() => mkdirSync(p('shared/sub'), { mode: 0o777 })),
        writeOldInShared: attempt(() => writeFileSync(p('shared/old'), 'no')),
      };
      out.inherited = {
        file: aclOf('shared/mine'),
        fileMode: (statSync(p('shared/mine')).mode & 0o7777).toString(8),
        dir: aclOf('shared/sub'),
        dirDefault: lgetxattr(p('shared/sub'), DEFAULT)?.toString('hex') ?? null,
      };
      // Without a default ACL the umask applies.
      writeFileSync(p('open/plain'), 'plain', { mode: 0o666 });
      mkdirSync(p('open/pdir'), { mode: 0o777 });
      out.masked = [p('open/plain'), p('open/pdir')].map((f) => (statSync(f).mode & 0o7777).toString(8));
      // An owner sets an ACL on a file of theirs: the mask shows as the group bits.
      out.setByOwner = attempt(() => lsetxattr(p('open/plain'), ACCESS, withUser(6, 6, 4, 6, 4)));
      out.afterSet = {
        mode: (statSync(p('open/plain')).mode & 0o7777).toString(8),
        acl: aclOf('open/plain'),
      };
      out.setOnOthers = attempt(() => lsetxattr(p('granted'), ACCESS, withUser(6, 6, 0, 6, 0)));
      return out;
    },
  },
  {
    name: 'entries made over a whiteout in a folder with a default ACL inherit it',
    lower: [
      {
        shared: {
          $dir: { f: 'old file', d: { inner: 'old' }, s: 'old', kept: 'kept' },
          mode: 0o755,
          xattrs: { [DEFAULT]: withUser(7, 5, 5, 7, 5) },
        },
      },
      {},
    ],
    run: (root) => {
      process.umask(0o077);
      const p = (n: string) => join(root, 'shared', n);
      for (const n of ['f', 'd', 's']) rmSync(p(n), { recursive: true });
      writeFileSync(p('f'), 'new', { mode: 0o666 });
      mkdirSync(p('d'), { mode: 0o777 });
      symlinkSync('f', p('s'));
      // Made in place (no whiteout) for comparison.
      writeFileSync(p('fresh'), 'fresh', { mode: 0o666 });
      mkdirSync(p('freshdir'), { mode: 0o777 });
      const out: Record<string, unknown> = {};
      for (const n of ['f', 'd', 's', 'fresh', 'freshdir']) {
        out[n] = {
          mode: (lstatSync(p(n)).mode & 0o7777).toString(8),
          access: lgetxattr(p(n), ACCESS)?.toString('hex') ?? null,
          default: lgetxattr(p(n), DEFAULT)?.toString('hex') ?? null,
        };
      }
      return out;
    },
  },
];
