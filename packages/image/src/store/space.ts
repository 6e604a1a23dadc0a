import * as fs from 'node:fs';
import { ImageError } from '../errors.js';
import { formatBytes } from './limits.js';

/** Written bytes between two looks at the free space. */
const CHECK_BYTES = 8 * 1024 * 1024;
/** Created files between two looks at the free inodes. */
const CHECK_FILES = 4096;

/** Space corral leaves free on the store's filesystem: 2% of it, at least 4 MiB, at most 1 GiB. */
export function reservedBytes(st: fs.StatsFs): number {
  return Math.min(Math.max((st.blocks * st.bsize) / 50, 4 * 1024 * 1024), 1024 * 1024 * 1024);
}

/** Inodes corral leaves free: 2% of them, at least 256, at most 100 000. */
export function reservedFiles(st: fs.StatsFs): number {
  return Math.min(Math.max(Math.floor(st.files / 50), 256), 100_000);
}

/**
 * Keeps a writer (a blob, an unpacking layer) from filling the store's filesystem: before
 * it starts and every few MiB while it writes, statfs(2) must show room for what comes next
 * plus a reserve, or it stops with NO_SPACE (and the caller removes what it wrote). A
 * hostile image (a layer that unpacks to more than the disk holds) is refused this way
 * instead of leaving the machine with a full /var/lib.
 */
export class SpaceGuard {
  private written = 0;
  private files = 0;
  private bytesSinceCheck = 0;
  private filesSinceCheck = 0;

  /** `dir`: a folder on the filesystem written to; `what`: what is written, for the message. */
  constructor(
    readonly dir: string,
    private readonly what: string,
  ) {}

  /** Throws NO_SPACE unless `bytes` and `files` more fit with the reserve left free. */
  ensure(bytes: number, files = 0): void {
    let st: fs.StatsFs;
    try {
      st = fs.statfsSync(this.dir);
    } catch {
      return; // no statfs here (the writer itself will report ENOSPC)
    }
    const free = st.bavail * st.bsize;
    const reserve = reservedBytes(st);
    if (free - bytes < reserve) {
      throw this.noSpace(
        bytes > 0 ? `needs ${formatBytes(bytes)} more` : 'needs room to be written',
        `${formatBytes(free)} is free and corral keeps ${formatBytes(reserve)} free`,
      );
    }
    // Filesystems without an inode count (btrfs) report 0 files.
    if (st.files > 0 && files > 0 && st.ffree - files < reservedFiles(st)) {
      throw this.noSpace(`needs ${files} more files`, `${st.ffree} inodes are free`);
    }
  }

  /**
   * Counts what was handed to the disk; every 8 MiB (or 4096 files) looks again, asking room
   * for the next stretch plus `inFlight`, the bytes handed over but maybe not yet on disk.
   */
  add(bytes: number, files = 0, inFlight = 0): void {
    this.written += bytes;
    this.files += files;
    this.bytesSinceCheck += bytes;
    this.filesSinceCheck += files;
    if (this.bytesSinceCheck < CHECK_BYTES && this.filesSinceCheck < CHECK_FILES) return;
    this.bytesSinceCheck = 0;
    this.filesSinceCheck = 0;
    this.ensure(CHECK_BYTES + inFlight, CHECK_FILES);
  }

  private noSpace(need: string, have: string): ImageError {
    const sofar =
      this.written || this.files
        ? ` (${formatBytes(this.written)}${this.files ? ` in ${this.files} file${this.files === 1 ? '' : 's'}` : ''} written so far)`
        : '';
    return new ImageError(
      'NO_SPACE',
      `the disk is full: not enough space in ${this.dir}: ${this.what} ${need}${sofar}, ${have}; nothing of it was kept. Free some space (remove unused images and containers) and retry`,
    );
  }
}

/** Is `e` (or an error it wraps) the kernel's "no space left on device" (or quota)? */
export function isNoSpace(e: unknown): boolean {
  for (let c = e, i = 0; c && i < 8; c = (c as { cause?: unknown }).cause, i++) {
    const code = (c as NodeJS.ErrnoException).code;
    if (code === 'ENOSPC' || code === 'EDQUOT') return true;
    if (/\bENOSPC\b|No space left on device/.test((c as Error).message ?? '')) return true;
  }
  return false;
}

/** How full the filesystem holding `dir` is, for a message ("12 KiB free of 48 MiB"). */
export function spaceOf(dir: string): string {
  try {
    const st = fs.statfsSync(dir);
    return `${formatBytes(st.bavail * st.bsize)} free of ${formatBytes(st.blocks * st.bsize)}${st.files > 0 ? `, ${st.ffree} inodes free` : ''}`;
  } catch {
    return 'its size unknown';
  }
}

/**
 * The kernel's ENOSPC while writing `what` to the store in `dir`, as NO_SPACE: which disk,
 * how full, and that nothing was kept (the writers remove what they wrote).
 */
export function diskFull(dir: string, what: string, cause: unknown): ImageError {
  return new ImageError(
    'NO_SPACE',
    `the disk is full: writing ${what} to ${dir} failed with ENOSPC (${spaceOf(dir)}); nothing of it was kept. Free some space (remove unused images and containers) and retry`,
    { cause },
  );
}
