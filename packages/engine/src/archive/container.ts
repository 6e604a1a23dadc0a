// A container's files, read and written from the host (docker cp, Docker's archive endpoints).
// A running container's root is its union mount; a stopped one's is mounted read-write for
// the copy, as Docker does. Paths are resolved inside that root through an fd (openInRoot),
// never as host path strings, so symlinks the container made cannot lead out of it.

import { randomBytes } from 'node:crypto';
import { existsSync, fstatSync, mkdirSync, readdirSync, readlinkSync, rmSync, type Stats } from 'node:fs';
import { join, posix } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { close, fdPath, isErrno, O, openat, openInRoot, openRoot, readlinkat } from '@corral/sys';
import { cleanupStale, mountAll } from '@corral/unionfs';
import type { EngineContext } from '../context.js';
import { EngineError } from '../errors.js';
import { getRecord } from '../lifecycle.js';
import { mountViews } from '../mounts.js';
import type { ContainerRecord } from '../records.js';
import { type ExtractOptions, type ExtractResult, extractTar } from './extract.js';
import { packTree } from './pack.js';
import { containerAbs, goFileMode, preserveTrailing } from './paths.js';

/** Docker's ContainerPathStat (the X-Docker-Container-Path-Stat header, base64 JSON). */
export interface PathStat {
  name: string;
  size: number;
  /** Go's os.FileMode bits (see goFileMode). */
  mode: number;
  mtime: string;
  /** For a symlink: where it leads, resolved inside the container, as an absolute path. */
  linkTarget: string;
}

/** Runs `fn` with an fd of the container's root (mounting a stopped container's for the time). */
export async function withContainerRoot<T>(
  ctx: EngineContext,
  ref: string,
  fn: (rootfd: number, r: ContainerRecord) => Promise<T>,
): Promise<T> {
  const r = getRecord(ctx, ref);
  if (r.state.status === 'running') {
    const rootfd = openRoot(ctx.rootfs(r.id));
    try {
      return await fn(rootfd, r);
    } finally {
      close(rootfd);
    }
  }
  releaseCopyMounts(ctx.records.dir(r.id), true);
  // Named after this process: a copy killed mid-way leaves a mount the next one (or rm) takes off.
  const target = join(ctx.records.dir(r.id), `cp-${process.pid}-${randomBytes(4).toString('hex')}`);
  mkdirSync(target, { mode: 0o700 });
  try {
    const mount = await mountAll(ctx.snapshots(r.hostConfig.storageDriver).mounts(r.id, r.layers), target);
    try {
      const rootfd = openRoot(target);
      try {
        return await fn(rootfd, r);
      } finally {
        close(rootfd);
      }
    } finally {
      await mount.unmount({ detach: true });
    }
  } finally {
    rmSync(target, { recursive: true, force: true });
  }
}

/** Where a container path lives: the container's root, or a volume or bind mount over part of it. */
interface Located {
  rootfd: number;
  /** The path inside `rootfd`. */
  path: string;
  /** The mount's destination in the container ('' for the root). */
  prefix: string;
  /** The base name of the path the caller gave (a mount's own root would say `/`). */
  name: string;
  /** The path the caller gave, for messages. */
  shown: string;
  mount?: ReturnType<typeof mountViews>[number];
}

/**
 * Runs `fn` where `path` lives. A path under a volume or bind mount is reached through the
 * mount's host folder (opened as the root of every lookup, so its symlinks stay inside it),
 * found by the path as written or, failing that, as resolved inside the container's root.
 */
export function withContainerPath<T>(
  ctx: EngineContext,
  ref: string,
  path: string,
  fn: (loc: Located, r: ContainerRecord) => Promise<T>,
): Promise<T> {
  return withContainerRoot(ctx, ref, async (rootfd, r) => {
    const abs = containerAbs(path);
    const name = abs === '/' ? '/' : posix.basename(abs);
    const mounts = mountViews(ctx, r).filter((m) => m.Destination && posix.normalize(m.Destination) !== '/');
    const under = (p: string) => {
      let best: { m: (typeof mounts)[number]; d: string } | undefined;
      for (const m of mounts) {
        const d = posix.normalize(m.Destination).replace(/\/$/, '');
        if ((p === d || p.startsWith(`${d}/`)) && (!best || d.length > best.d.length)) best = { m, d };
      }
      return best;
    };
    const lexical = posix.normalize(abs).replace(/\/\.?$/, '') || '/';
    const found = under(lexical) ?? under(canonical(rootfd, abs) ?? '');
    if (!found) return fn({ rootfd, path, prefix: '', name, shown: path }, r);
    if (!found.m.Source || found.m.Type === 'tmpfs')
      throw new EngineError(
        'InvalidArgument',
        `${path} is on a ${found.m.Type} mount, which a copy cannot reach`,
      );
    const canon = under(lexical) ? lexical : canonical(rootfd, abs)!;
    const inner = preserveTrailing(canon.slice(found.d.length) || '/', abs);
    const mountfd = openRoot(found.m.Source);
    try {
      return await fn(
        { rootfd: mountfd, path: inner, prefix: found.d, name, shown: path, mount: found.m },
        r,
      );
    } finally {
      close(mountfd);
    }
  });
}

/** `abs` with its folders' symlinks resolved inside the root (the last name kept), or null. */
function canonical(rootfd: number, abs: string): string | null {
  const cut = abs.lastIndexOf('/') + 1;
  const base = abs.slice(cut);
  try {
    const fd = openInRoot(rootfd, abs.slice(0, cut) || '/', O.PATH | O.DIRECTORY);
    try {
      const dir = inRootPath(rootfd, fd);
      return base === '' || base === '.' ? dir : posix.join(dir, base);
    } finally {
      close(fd);
    }
  } catch {
    return null;
  }
}

/**
 * Takes off the roots that copies mounted in a container's folder: those of processes that
 * are gone (`deadOnly`), or all of them (the container is being removed; a copy still
 * running keeps its open fds).
 */
export function releaseCopyMounts(dir: string, deadOnly = false): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const n of names) {
    const m = /^cp-(\d+)-[0-9a-f]+$/.exec(n);
    if (!m || (deadOnly && existsSync(`/proc/${m[1]}`))) continue;
    cleanupStale(join(dir, n));
    rmSync(join(dir, n), { recursive: true, force: true });
  }
}

const notFound = (path: string, r: ContainerRecord) =>
  new EngineError('NotFound', `Could not find the file ${path} in container ${r.name}`);

/** The resolved parent folder of `abs` (symlinks followed in the root) and the last name, kept. */
function resolveParent(
  rootfd: number,
  abs: string,
  r: ContainerRecord,
  shown = abs,
): { dirfd: number; base: string } {
  const cut = abs.lastIndexOf('/') + 1;
  const dir = abs.slice(0, cut) || '/';
  const base = abs.slice(cut);
  try {
    return { dirfd: openInRoot(rootfd, dir, O.PATH | O.DIRECTORY), base };
  } catch (e) {
    if (isErrno(e, 'ENOENT')) throw notFound(shown, r);
    if (isErrno(e, 'ENOTDIR')) throw new EngineError('InvalidArgument', `${abs}: not a directory`);
    throw e;
  }
}

/** `path`'s stat as Docker reports it: the last component is not followed. */
function statIn(
  rootfd: number,
  path: string,
  r: ContainerRecord,
  loc: { prefix: string; name: string; shown?: string } = { prefix: '', name: '' },
): { stat: PathStat; st: Stats; dirfd: number; base: string } {
  const abs = containerAbs(path);
  const { dirfd, base } = resolveParent(rootfd, abs, r, loc.shown ?? path);
  try {
    let st: Stats;
    if (base === '' || base === '.') st = fstatSync(dirfd);
    else {
      let fd: number;
      try {
        fd = openat(dirfd, base, O.PATH | O.NOFOLLOW | O.CLOEXEC);
      } catch (e) {
        if (isErrno(e, 'ENOENT')) throw notFound(loc.shown ?? path, r);
        throw e;
      }
      try {
        st = fstatSync(fd);
      } finally {
        close(fd);
      }
    }
    const inside = st.isSymbolicLink() ? resolvedTarget(rootfd, dirfd, abs, base) : '';
    // In a mount, the target's path is the mount's destination joined with its path inside.
    const linkTarget = inside && loc.prefix ? posix.join(loc.prefix, inside) : inside;
    const name = loc.name || (abs === '/' ? '/' : posix.basename(abs));
    const stat = { name, size: st.size, mode: goFileMode(st), mtime: st.mtime.toISOString(), linkTarget };
    return { stat, st, dirfd, base };
  } catch (e) {
    close(dirfd);
    throw e;
  }
}

/** Where symlink `abs` leads inside the root; a dangling one by its text, joined to its folder. */
function resolvedTarget(rootfd: number, dirfd: number, abs: string, base: string): string {
  try {
    const fd = openInRoot(rootfd, abs, O.PATH);
    try {
      return inRootPath(rootfd, fd);
    } finally {
      close(fd);
    }
  } catch {
    const text = readlinkat(dirfd, base);
    return text.startsWith('/') ? posix.normalize(text) : posix.join(posix.dirname(abs), text);
  }
}

/** The path inside the root of what `fd` holds. */
function inRootPath(rootfd: number, fd: number): string {
  const root = readlinkSync(fdPath(rootfd));
  const p = readlinkSync(fdPath(fd));
  if (p === root) return '/';
  if (!p.startsWith(`${root}/`))
    throw new EngineError('Conflict', 'the file moved out of the container root during the copy');
  return p.slice(root.length);
}

export function statPath(ctx: EngineContext, ref: string, path: string): Promise<PathStat> {
  return withContainerPath(ctx, ref, path, async (loc, r) => {
    const s = statIn(loc.rootfd, loc.path, r, loc);
    close(s.dirfd);
    return s.stat;
  });
}

/**
 * A tar of `path` (Docker's GET archive): a folder as itself and its content under the path's
 * base name, anything else as one entry; a final symlink is archived as the link. `onStat` is
 * called before any byte is written to `out`.
 */
export function getArchive(
  ctx: EngineContext,
  ref: string,
  path: string,
  out: Writable,
  onStat?: (s: PathStat) => void,
): Promise<PathStat> {
  return withContainerPath(ctx, ref, path, async (loc, r) => {
    const s = statIn(loc.rootfd, loc.path, r, loc);
    try {
      onStat?.(s.stat);
      const as = s.stat.name;
      if (s.st.isDirectory() && s.base !== '' && s.base !== '.') {
        const fd = openat(s.dirfd, s.base, O.PATH | O.NOFOLLOW | O.DIRECTORY | O.CLOEXEC);
        try {
          await pipeline(packTree({ dirfd: fd, name: '.', as }), out);
        } finally {
          close(fd);
        }
      } else if (s.st.isDirectory()) await pipeline(packTree({ dirfd: s.dirfd, name: '.', as }), out);
      else await pipeline(packTree({ dirfd: s.dirfd, name: s.base, as }), out);
      return s.stat;
    } finally {
      close(s.dirfd);
    }
  });
}

/**
 * Extracts tar `input` into folder `path` of the container (Docker's PUT archive); a final
 * symlink is followed (inside the root), so a link to a folder is a fine destination.
 */
export function putArchive(
  ctx: EngineContext,
  ref: string,
  path: string,
  input: Readable,
  options: ExtractOptions = {},
): Promise<ExtractResult> {
  return withContainerPath(ctx, ref, path, async (loc, r) => {
    if (loc.mount ? !loc.mount.RW : r.hostConfig.readonlyRootfs)
      throw new EngineError(
        'Forbidden',
        loc.mount ? 'mounted volume is marked read-only' : 'container rootfs is marked read-only',
      );
    let fd: number;
    try {
      fd = openInRoot(loc.rootfd, containerAbs(loc.path), O.PATH);
    } catch (e) {
      if (isErrno(e, 'ENOENT')) throw notFound(path, r);
      if (isErrno(e, 'ENOTDIR'))
        throw new EngineError('InvalidArgument', 'extraction point is not a directory');
      throw e;
    }
    try {
      if (!fstatSync(fd).isDirectory())
        throw new EngineError('InvalidArgument', 'extraction point is not a directory');
      // Extracted relative to this very folder: one the container swaps for a symlink meanwhile
      // does not redirect the rest of the copy.
      return await extractTar(input, fd, options);
    } finally {
      close(fd);
    }
  });
}
