import {
  chmodSync,
  lchownSync,
  linkSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  readdirSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { lsetxattr, mknod, S_IF } from '@corral/sys';
import { markOpaque } from '../whiteout.js';
import { FIXED_TIME } from './tree.js';

/**
 * A layer described as data: a string is a file's content, an object a folder, and
 * special entries are tagged. Folders may carry `'.opaque': true` (overlayfs format).
 */
export type Spec = { [name: string]: Entry };
export type Entry =
  | string
  | Buffer
  | Spec
  | { $symlink: string }
  | { $whiteout: true }
  | { $fifo: true }
  | { $link: string }
  | {
      $file: string | Buffer;
      mode?: number;
      xattrs?: Record<string, string | Buffer>;
      uid?: number;
      gid?: number;
    }
  | {
      $dir: Spec;
      mode?: number;
      opaque?: boolean;
      xattrs?: Record<string, string | Buffer>;
      uid?: number;
      gid?: number;
    };

function isTagged(e: Entry, tag: string): boolean {
  return typeof e === 'object' && !Buffer.isBuffer(e) && tag in e;
}

/** Writes `spec` into `dir`, then gives every entry the fixed time. */
export function buildLayer(dir: string, spec: Spec): void {
  mkdirSync(dir, { recursive: true });
  const links: [string, string][] = [];
  const write = (base: string, s: Spec) => {
    for (const [name, e] of Object.entries(s)) {
      const path = join(base, name);
      if (typeof e === 'string' || Buffer.isBuffer(e)) writeFileSync(path, e);
      else if (isTagged(e, '$symlink')) symlinkSync((e as { $symlink: string }).$symlink, path);
      else if (isTagged(e, '$whiteout')) mknod(path, S_IF.CHR | 0o600, 0);
      else if (isTagged(e, '$fifo')) mknod(path, S_IF.FIFO | 0o644, 0);
      else if (isTagged(e, '$link')) links.push([join(dir, (e as { $link: string }).$link), path]);
      else if (isTagged(e, '$file')) {
        const f = e as {
          $file: string | Buffer;
          mode?: number;
          xattrs?: Record<string, string | Buffer>;
          uid?: number;
          gid?: number;
        };
        writeFileSync(path, f.$file, { mode: f.mode ?? 0o644 });
        if (f.uid !== undefined || f.gid !== undefined) lchownSync(path, f.uid ?? 0, f.gid ?? 0);
        // After chown, which clears set-user-ID.
        if (f.mode !== undefined) chmod(path, f.mode);
        for (const [k, v] of Object.entries(f.xattrs ?? {})) lsetxattr(path, k, v);
      } else if (isTagged(e, '$dir')) {
        const d = e as {
          $dir: Spec;
          mode?: number;
          opaque?: boolean;
          xattrs?: Record<string, string | Buffer>;
          uid?: number;
          gid?: number;
        };
        mkdirSync(path);
        write(path, d.$dir);
        if (d.uid !== undefined || d.gid !== undefined) lchownSync(path, d.uid ?? 0, d.gid ?? 0);
        if (d.mode !== undefined) chmod(path, d.mode);
        if (d.opaque) markOpaque(path);
        for (const [k, v] of Object.entries(d.xattrs ?? {})) lsetxattr(path, k, v);
      } else {
        mkdirSync(path);
        write(path, e as Spec);
      }
    }
  };
  write(dir, spec);
  for (const [from, to] of links) linkSync(from, to);
  fixTimes(dir);
}

// writeFileSync's and mkdirSync's modes are cut by the umask; set them exactly.
const chmod = (path: string, mode: number) => chmodSync(path, mode);

/** Sets every entry's atime and mtime to FIXED_TIME (folders last, after their contents). */
export function fixTimes(dir: string): void {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (lstatSync(p).isDirectory()) fixTimes(p);
    else lutimesSync(p, FIXED_TIME, FIXED_TIME);
  }
  lutimesSync(dir, FIXED_TIME, FIXED_TIME);
}
