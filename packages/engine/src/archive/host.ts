// docker cp between a host path and a container, with the docker client's rules (what
// `docker cp` itself decides before it calls the archive endpoints): symlinks on the host
// side are the user's and followed as Docker does; the container side goes through its
// archive endpoints (ContainerFiles): getArchive / putArchive in this process, which resolve
// inside the container's root, or corrald's for the CLI's remote mode.
import { lstatSync, readlinkSync, realpathSync, statSync } from 'node:fs';
import { posix } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { PassThrough } from 'node:stream';
import { AT, close, O, openat } from '@corral/sys';
import { EngineError } from '../errors.js';
import type { PathStat } from './container.js';
import { type ExtractOptions, type ExtractResult, extractTar } from './extract.js';
import { packTree } from './pack.js';
import {
  CopyError,
  type CopyInfo,
  containerAbs,
  goModeIsDir,
  goModeIsIrregular,
  goModeIsSymlink,
  hasTrailingSep,
  prepareCopy,
  specifiesCurrentDir,
  splitDirEntry,
} from './paths.js';

/**
 * The container side of docker cp: the archive endpoints of one container (stat, get, put),
 * reached in this process (EngineArchive) or through corrald (the CLI's remote mode).
 */
export interface ContainerFiles {
  /** The container's name, for messages. */
  name(): string | Promise<string>;
  /** `path`'s stat, its last component not followed. */
  stat(path: string): Promise<PathStat>;
  /** A tar of `path` written to `out` (ended with it). */
  get(path: string, out: Writable): Promise<unknown>;
  /** Tar `input` extracted into folder `path`. */
  put(path: string, input: Readable, options: ExtractOptions): Promise<ExtractResult>;
}

export interface CopyOptions {
  /** -L: follow a symlink given as the source. */
  followLink?: boolean;
  /** -a: keep the files' owners. */
  archive?: boolean;
}

/** moby's GetRebaseName: the link's target to copy, and the name the copy keeps. */
function rebaseFor(path: string, resolved: string): { path: string; rebaseName?: string } {
  if (specifiesCurrentDir(path) && !specifiesCurrentDir(resolved)) resolved += '/.';
  if (hasTrailingSep(path) && !hasTrailingSep(resolved)) resolved += '/';
  const base = (p: string) => splitDirEntry(p).base;
  return { path: resolved, rebaseName: base(path) !== base(resolved) ? base(path) : undefined };
}

const copyError = (e: unknown) =>
  e instanceof CopyError ? new EngineError('InvalidArgument', e.message) : e;

/** Copies `src` of the container to host path `dst` (docker cp CONTAINER:SRC DST). */
export async function copyFromContainer(
  files: ContainerFiles,
  src: string,
  dst: string,
  options: CopyOptions = {},
): Promise<ExtractResult> {
  let rebaseName: string | undefined;
  if (options.followLink) {
    const st = await files.stat(src);
    if (goModeIsSymlink(st.mode)) ({ path: src, rebaseName } = rebaseFor(src, st.linkTarget));
  }
  checkOutputPath(dst);
  try {
    const srcStat = await files.stat(src);
    const dstInfo = destinationInfo(dst);
    const srcInfo: CopyInfo = { path: src, exists: true, isDir: goModeIsDir(srcStat.mode), rebaseName };
    const { dir, rename } = prepareCopy(srcInfo, dstInfo);
    // The tar's top entry is named after the source path's base (see getArchive).
    const top = containerAbs(src) === '/' ? '/' : posix.basename(containerAbs(src));
    const fd = openat(AT.FDCWD, dir, O.PATH | O.DIRECTORY | O.CLOEXEC);
    try {
      const tar = new PassThrough();
      const reading = files.get(src, tar).catch((e) => {
        tar.destroy(e);
        throw e;
      });
      const [result] = await Promise.all([
        extractTar(tar, fd, {
          keepOwners: options.archive,
          noOverwriteDirNonDir: true,
          rename: rename || rebaseName ? { from: top, to: rename?.to ?? rebaseName! } : undefined,
        }),
        reading,
      ]);
      return result;
    } finally {
      close(fd);
    }
  } catch (e) {
    throw copyError(e);
  }
}

/** docker's ValidateOutputPath: the destination's folder must exist. */
function checkOutputPath(dst: string): void {
  const { dir } = splitDirEntry(dst);
  let ok = false;
  try {
    ok = statSync(dir).isDirectory();
  } catch {}
  if (!ok) throw new EngineError('InvalidArgument', `invalid output path: directory "${dir}" does not exist`);
}

/** moby's CopyInfoDestinationPath: a host destination, its symlinks followed (10 at most). */
function destinationInfo(path: string): CopyInfo {
  for (let n = 0; ; n++) {
    let st: ReturnType<typeof lstatSync> | undefined;
    try {
      st = lstatSync(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    if (!st) {
      const { dir } = splitDirEntry(path);
      if (!statSync(dir).isDirectory()) throw new CopyError('not a directory');
      return { path, exists: false, isDir: false };
    }
    if (!st.isSymbolicLink()) return { path, exists: true, isDir: st.isDirectory() };
    if (n >= 10) throw new CopyError(`too many symlinks in ${path}`);
    const target = readlinkSync(path);
    path = target.startsWith('/') ? target : posix.join(splitDirEntry(path).dir, target);
  }
}

/**
 * Copies host path `src` into the container at `dst` (docker cp SRC CONTAINER:DST); `src`
 * `-` reads a tar from `stdin`, extracted into folder `dst`.
 */
export async function copyToContainer(
  files: ContainerFiles,
  src: string,
  dst: string,
  options: CopyOptions & { stdin?: Readable } = {},
): Promise<ExtractResult> {
  const extract = { noOverwriteDirNonDir: true, keepOwners: options.archive };
  try {
    const dstInfo: CopyInfo = { path: dst, exists: false, isDir: false };
    let st: PathStat | null = await files.stat(dst).catch(notFoundNull);
    if (st && goModeIsSymlink(st.mode)) {
      dstInfo.path = st.linkTarget.startsWith('/')
        ? st.linkTarget
        : posix.join(splitDirEntry(dst).dir, st.linkTarget);
      st = await files.stat(dstInfo.path).catch(notFoundNull);
    }
    const name = await files.name();
    if (st && goModeIsIrregular(st.mode))
      throw new EngineError(
        'InvalidArgument',
        `destination "${name}:${dst}" must be a directory or a regular file`,
      );
    if (st) Object.assign(dstInfo, { exists: true, isDir: goModeIsDir(st.mode) });
    if (src === '-') {
      if (!dstInfo.isDir)
        throw new EngineError('InvalidArgument', `destination "${name}:${dst}" must be a directory`);
      if (!options.stdin) throw new EngineError('InvalidArgument', 'no tar stream to read');
      return await files.put(dstInfo.path, options.stdin, extract);
    }
    const srcInfo = sourceInfo(src, options.followLink ?? false);
    const { dir, rename } = prepareCopy(srcInfo, dstInfo);
    const { dir: srcDir, base: srcBase } = splitDirEntry(srcInfo.path);
    const fd = openat(AT.FDCWD, srcDir, O.PATH | O.DIRECTORY | O.CLOEXEC);
    try {
      const as = rename ? rename.to : (srcInfo.rebaseName ?? srcBase);
      return await files.put(dir, packTree({ dirfd: fd, name: srcBase, as }), extract);
    } finally {
      close(fd);
    }
  } catch (e) {
    throw copyError(e);
  }
}

function notFoundNull(e: unknown): null {
  if (e instanceof EngineError && e.kind === 'NotFound') return null;
  throw e;
}

/** moby's CopyInfoSourcePath: the host source, its folder's symlinks resolved (all of it with -L). */
function sourceInfo(path: string, followLink: boolean): CopyInfo {
  let resolved: string;
  let rebaseName: string | undefined;
  const real = (p: string) => {
    try {
      return realpathSync(p);
    } catch {
      throw new EngineError('NotFound', `lstat ${p}: no such file or directory`);
    }
  };
  if (followLink) {
    ({ path: resolved, rebaseName } = rebaseFor(path, real(path)));
  } else {
    const cut = path.lastIndexOf('/') + 1;
    const dir = path.slice(0, cut) || '.';
    resolved = `${real(dir).replace(/\/$/, '')}/${path.slice(cut)}`;
    if (hasTrailingSep(path) && splitDirEntry(path).base !== splitDirEntry(resolved).base)
      rebaseName = splitDirEntry(path).base;
  }
  let st: ReturnType<typeof lstatSync>;
  try {
    st = lstatSync(resolved);
  } catch {
    throw new EngineError(
      'NotFound',
      `lstat ${resolved.replace(/\/\.?$/, '') || '/'}: no such file or directory`,
    );
  }
  return { path: resolved, exists: true, isDir: st.isDirectory(), rebaseName };
}
