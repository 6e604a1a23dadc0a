// Docker's path rules for docker cp (moby's pkg/archive copy.go, restated): a trailing `/`
// asserts a folder, a trailing `/.` means "the folder's content", and a copy lands under the
// destination's base name unless the destination is an existing folder.

import type { Stats } from 'node:fs';
import { posix } from 'node:path';

export const hasTrailingSep = (p: string) => p.endsWith('/');
export const specifiesCurrentDir = (p: string) => p === '.' || p.endsWith('/.');

/** A clean absolute path that keeps a trailing `/` or `/.` of `original` (they mean something). */
export function preserveTrailing(clean: string, original: string): string {
  if (specifiesCurrentDir(original) && !specifiesCurrentDir(clean)) return `${clean.replace(/\/$/, '')}/.`;
  if (hasTrailingSep(original) && !hasTrailingSep(clean)) return `${clean}/`;
  return clean;
}

/** `path` made absolute in the container (relative to its /), trailing `/` or `/.` kept. */
export const containerAbs = (path: string) => preserveTrailing(posix.join('/', path), path);

/** Folder and base of `path`; `a/b/.` splits into `a/b` and `.` (moby's SplitPathDirEntry). */
export function splitDirEntry(path: string): { dir: string; base: string } {
  let clean = posix.normalize(path);
  if (clean.length > 1) clean = clean.replace(/\/$/, '');
  if (specifiesCurrentDir(path) && clean !== '.' && clean !== '/') clean += '/.';
  return { dir: posix.dirname(clean), base: posix.basename(clean) || '/' };
}

/** What a copy knows of one side: its path, whether it exists and is a folder, a new base name. */
export interface CopyInfo {
  path: string;
  exists: boolean;
  isDir: boolean;
  /** The base name the copy should have when a followed symlink changed it. */
  rebaseName?: string;
}

/**
 * Where a tar of `src` is extracted to make `dst` (moby's PrepareArchiveCopy): the folder to
 * extract into and the renaming of the tar's top entry, or Docker's error for the case.
 */
export function prepareCopy(
  src: CopyInfo,
  dst: CopyInfo,
): { dir: string; rename?: { from: string; to: string } } {
  const { dir: dstDir, base: dstBase } = splitDirEntry(dst.path);
  const srcBase = src.rebaseName || splitDirEntry(src.path).base;
  if (dst.exists && dst.isDir) return { dir: dst.path };
  if (dst.exists && src.isDir) throw new CopyError('cannot copy directory');
  if (!dst.exists && !src.isDir && (hasTrailingSep(dst.path) || specifiesCurrentDir(dst.path)))
    throw new CopyError('no such directory');
  return { dir: dstDir, rename: { from: srcBase, to: dstBase } };
}

/** A tar entry's name with its top `from` renamed `to` (moby's RebaseArchiveEntries). */
export function rebaseName(name: string, from: string, to: string): string {
  if (from === '/' || from === '')
    return `${to}/${name.replace(/^\/+/, '')}`.replace(/\/+$/, (m) => (m ? '/' : ''));
  if (name === from || name === `${from}/`) return name.replace(from, to);
  if (name.startsWith(`${from}/`)) return to + name.slice(from.length);
  return name;
}

/** A copy refused for what its two sides are (Docker's wording); the CLI prints it as is. */
export class CopyError extends Error {}

// Go's os.FileMode bits, which Docker's path stat (X-Docker-Container-Path-Stat) carries.
const GO = {
  dir: 2 ** 31,
  symlink: 2 ** 27,
  device: 2 ** 26,
  namedPipe: 2 ** 25,
  socket: 2 ** 24,
  setuid: 2 ** 23,
  setgid: 2 ** 22,
  charDevice: 2 ** 21,
  sticky: 2 ** 20,
};

/** A file's stat mode as Go's os.FileMode (what docker's client reads). */
export function goFileMode(st: Stats): number {
  let m = st.mode & 0o777;
  if (st.isDirectory()) m += GO.dir;
  else if (st.isSymbolicLink()) m += GO.symlink;
  else if (st.isFIFO()) m += GO.namedPipe;
  else if (st.isSocket()) m += GO.socket;
  else if (st.isCharacterDevice()) m += GO.device + GO.charDevice;
  else if (st.isBlockDevice()) m += GO.device;
  if (st.mode & 0o4000) m += GO.setuid;
  if (st.mode & 0o2000) m += GO.setgid;
  if (st.mode & 0o1000) m += GO.sticky;
  return m;
}

export const goModeIsDir = (mode: number) => mode >= GO.dir;
export const goModeIsSymlink = (mode: number) => Math.floor(mode / GO.symlink) % 2 === 1;
/** Neither a folder nor a regular file (Docker refuses such a destination). */
export const goModeIsIrregular = (mode: number) =>
  !goModeIsDir(mode) && mode > 0o7777 && !goModeIsSymlink(mode);
