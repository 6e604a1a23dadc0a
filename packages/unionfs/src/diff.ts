import { lstatSync, readdirSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { DirFd, fdPath } from '@corral/sys';
import { isOpaque, isWhiteout, redirectOf } from './whiteout.js';

/** One change of an upper layer against its lower layers, as `docker diff` lists them. */
export interface Change {
  kind: 'added' | 'modified' | 'deleted';
  /** Absolute path inside the union, e.g. `/etc/hosts`. */
  path: string;
  /** For a folder renamed with overlayfs's redirect_dir: where it came from. */
  from?: string;
}

function lstatOrNull(path: string): Stats | null {
  try {
    return lstatSync(path);
  } catch {
    return null;
  }
}

/** The entry that a stack of layers (top first) shows at `rel`, honouring whiteouts and opaque folders. */
function lowerEntry(layers: readonly string[], rel: string): { layer: string; st: Stats } | null {
  const parts = rel.split('/').filter(Boolean);
  for (const layer of layers) {
    let path = layer;
    let hidden = false;
    for (let i = 0; i < parts.length; i++) {
      path = join(path, parts[i]);
      const st = lstatOrNull(path);
      if (!st) break; // not in this layer: look below
      if (isWhiteout(st)) return null;
      if (i === parts.length - 1) return { layer, st };
      if (!st.isDirectory()) return null; // a file here hides everything below it
      if (isOpaque(path)) hidden = true;
    }
    // An opaque folder on the way hides the layers below.
    if (hidden) return null;
  }
  return null;
}

/** The merged names a stack of layers shows in folder `rel`. */
function lowerNames(layers: readonly string[], rel: string): string[] {
  const names = new Set<string>();
  const gone = new Set<string>();
  const parts = rel.split('/').filter(Boolean);
  for (const layer of layers) {
    const dir = join(layer, ...parts);
    const st = lstatOrNull(dir);
    if (!st) continue;
    if (!st.isDirectory()) break;
    for (const name of readdirSync(dir)) {
      if (names.has(name) || gone.has(name)) continue;
      const est = lstatSync(join(dir, name));
      if (isWhiteout(est)) gone.add(name);
      else names.add(name);
    }
    if (isOpaque(dir)) break;
  }
  return [...names].sort();
}

/** Runs `f`, or gives null when the entry it looks at changed or went away meanwhile. */
function unlessChanged<T>(f: () => T): T | null {
  try {
    return f();
  } catch (e) {
    // SyscallError and Node's errors both carry the errno name as `code`.
    if (['ENOENT', 'ELOOP', 'ENOTDIR'].includes((e as { code?: string }).code ?? '')) return null;
    throw e;
  }
}

/**
 * The changes an upper layer makes to its lower layers (top first), read straight from the
 * folders without mounting: a whiteout is a deletion, an opaque folder deletes what the
 * lowers had in it, an entry that a lower also has is modified, others are added.
 * Parent folders of changes that exist below are listed as modified, as `docker diff` does.
 * The upper layer may belong to a running container, which can swap a folder for a symlink
 * to the host's `/` at any moment: its folders are held by fds and entries are looked up
 * relative to them (O_NOFOLLOW), so no name of the host's ever shows up here.
 */
export function diffUpper(upper: string, lower: readonly string[] = []): Change[] {
  const changes: Change[] = [];
  // merged: the lowers show through this folder; replaced: it hides them (opaque);
  // new: the lowers have nothing at this path.
  const walk = (dir: DirFd, rel: string, mode: 'merged' | 'replaced' | 'new') => {
    const names = dir.names().sort();
    if (mode === 'replaced') {
      const kept = new Set(names);
      for (const n of lowerNames(lower, rel)) {
        if (!kept.has(n)) changes.push({ kind: 'deleted', path: `${rel}/${n}` });
      }
    }
    for (const name of names) {
      const r = `${rel}/${name}`;
      const st = unlessChanged(() => dir.lstat(name));
      if (!st) continue;
      const below = mode === 'new' ? null : lowerEntry(lower, r);
      if (isWhiteout(st)) {
        if (below) changes.push({ kind: 'deleted', path: r });
        continue;
      }
      const kind = below ? 'modified' : 'added';
      if (!st.isDirectory()) {
        changes.push({ kind, path: r });
        continue;
      }
      const sub = unlessChanged(() => dir.dir(name));
      if (!sub) {
        // No longer a folder (swapped for another entry meanwhile): still a change at this name.
        if (unlessChanged(() => dir.lstat(name))) changes.push({ kind, path: r });
        continue;
      }
      try {
        const here = `${fdPath(sub.fd)}/.`;
        const redirect = redirectOf(here);
        if (redirect !== null) {
          // A renamed lower folder: its contents come from where it was.
          const from = redirect.startsWith('/') ? redirect : `${rel}/${redirect}`;
          changes.push({ kind, path: r, from });
          walk(sub, r, 'new');
          continue;
        }
        changes.push({ kind, path: r });
        if (!below?.st.isDirectory()) walk(sub, r, 'new');
        else walk(sub, r, mode === 'replaced' || isOpaque(here) ? 'replaced' : 'merged');
      } finally {
        sub.close();
      }
    }
  };
  const top = DirFd.open(upper);
  try {
    walk(top, '', 'merged');
  } finally {
    top.close();
  }
  return changes.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** Changes as `docker diff` prints them: `A /path`, `C /path`, `D /path`. */
export function formatChanges(changes: readonly Change[]): string {
  const letter = { added: 'A', modified: 'C', deleted: 'D' } as const;
  return changes.map((c) => `${letter[c.kind]} ${c.path}`).join('\n');
}
