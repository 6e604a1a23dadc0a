// The union server's process: opens the layers, mounts /dev/fuse at the target, starts the
// threads and serves until the mount goes away. Runs as root on the host, for a container
// that may be hostile: it never resolves a path the container can change except relative to
// the layer fds opened here.
import {
  closeSync,
  fstatSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import {
  AT,
  close,
  isErrno,
  MNT,
  mountFuse,
  O,
  openat,
  openFuseDevice,
  PR,
  prctl,
  prlimit,
  RLIMIT,
  umount2,
} from '@corral/sys';
import { startThreads } from '../server.js';
import { createUnionShared, MAX_WRITE } from './fs.js';
import { NodeTable } from './nodes.js';

export interface ServerConfig {
  lower: string[];
  upper: string | null;
  work: string | null;
  target: string;
  /** Threads serving requests (default 3). */
  threads?: number;
  /** Log every request to stderr. */
  debug?: boolean;
  /** overlayfs's `volatile`: no copy-up or fsync waits for the disk (fast, lost in a crash). */
  volatile?: boolean;
}

/** Temporaries a server left in the work folder when it died mid-change. */
function cleanWork(work: string): void {
  for (const name of readdirSync(work)) {
    if (name.startsWith('#corral.')) rmSync(join(work, name), { recursive: true, force: true });
  }
}

/**
 * The kernel reads a FUSE file ahead in READs of its bdi's readahead (128 KiB by default; the
 * INIT reply can only lower it). Lower files are read through READ, so bigger READs mean fewer
 * round trips: 1020 KiB, the most whose READ reply still fits into one splice pipe (1 MiB, the
 * most without CAP_SYS_RESOURCE) beside its header. Measured: 512 KiB took a quarter of the
 * server's time per MiB of 128 KiB, 1020 KiB another 5 to 10% off.
 */
const READ_AHEAD_KB = 1020;

/** Sets the readahead of the bdi of the FUSE mount at `mountPoint` (found in mountinfo). */
function raiseReadahead(mountPoint: string): void {
  let dev = '';
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ');
    if (f[4] === mountPoint && line.includes(' - fuse.corral-unionfs ')) dev = f[2];
  }
  if (!/^\d+:\d+$/.test(dev)) return;
  try {
    writeFileSync(`/sys/class/bdi/${dev}/read_ahead_kb`, String(READ_AHEAD_KB));
  } catch {
    // No sysfs here: READs stay at the kernel's default size.
  }
}

/**
 * Mounts the union described by `config` and serves it in this process. Calls `ready` once
 * the mount answers, resolves when it is unmounted. Throws (before mounting, or after
 * unmounting again) when it cannot.
 */
export async function serveUnion(config: ServerConfig, ready: () => void): Promise<void> {
  // Not to be traced or dumped by anyone: it holds fds of every layer.
  prctl(PR.SET_DUMPABLE, 0);
  process.umask(0);
  // One fd per open file of the container: take the whole allowance.
  const nofile = prlimit(0, RLIMIT.NOFILE);
  if (nofile.soft < nofile.hard) prlimit(0, RLIMIT.NOFILE, { soft: nofile.hard, hard: nofile.hard });
  const writable = config.upper !== null && config.work !== null;
  const paths = writable ? [config.upper as string, ...config.lower] : [...config.lower];
  const fds: number[] = [];
  let workFd = -1;
  let devFd = -1;
  let mounted = false;
  try {
    for (const p of paths) fds.push(openat(AT.FDCWD, p, O.PATH | O.DIRECTORY | O.CLOEXEC));
    if (writable) {
      cleanWork(config.work as string);
      workFd = openat(AT.FDCWD, config.work as string, O.PATH | O.DIRECTORY | O.CLOEXEC);
    }
    // Layers on different filesystems get inode numbers kept apart (as overlayfs's xino).
    const devs: number[] = [];
    const devIndex = fds.map((fd) => {
      const dev = fstatSync(fd).dev;
      let k = devs.indexOf(dev);
      if (k < 0) k = devs.push(dev) - 1;
      return k;
    });
    const shared = createUnionShared(fds, writable, workFd, devIndex, config.volatile ?? false);
    const root = fstatSync(fds[0], { bigint: true });
    new NodeTable(shared.nodes).initRoot(0, fds.length - 1, Number(root.ino));
    devFd = openFuseDevice();
    // Resolved before mounting: afterwards a look at the path would ask this very server.
    const mountPoint = realpathSync(config.target);
    mountFuse(config.target, devFd, {
      source: 'corral-unionfs',
      subtype: 'corral-unionfs',
      readonly: !writable,
    });
    mounted = true;
    const threads = startThreads(new URL('./worker.js', import.meta.url), devFd, shared, {
      threads: config.threads ?? 3,
      maxWrite: MAX_WRITE,
      debug: config.debug,
    });
    const stop = () => {
      try {
        umount2(config.target, MNT.DETACH);
      } catch (e) {
        if (!isErrno(e, 'EINVAL', 'ENOENT')) throw e;
      }
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
    try {
      await threads.init;
    } catch (e) {
      stop();
      throw e;
    }
    // After INIT: its reply sets the readahead to at most what the kernel offered.
    raiseReadahead(mountPoint);
    ready();
    await threads.ended;
    mounted = false;
  } finally {
    if (mounted) {
      try {
        umount2(config.target, MNT.DETACH);
      } catch {}
    }
    if (devFd >= 0) close(devFd);
    for (const fd of fds) closeSync(fd);
    if (workFd >= 0) closeSync(workFd);
  }
}
