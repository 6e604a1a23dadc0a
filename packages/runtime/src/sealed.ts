// Binaries of the host that a container can reach through /proc (a process's exe, its mapped
// files) are run from read-only views, so that container root can never write to them
// (CVE-2019-5736: a program `#!/proc/self/exe` turns into the runtime's binary, then writes
// to it through /proc/self/exe or an O_PATH handle that outlives the process).
// A view is a detached overlayfs mount of the binary's folder, with no upper layer: every
// open for writing fails with EROFS whatever path or handle leads to it, and its inodes are
// the overlay's, so a file handle of one never names the host's file (runc 1.2 does the same).
import { realpathSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import {
  close,
  FSCONFIG,
  FSMOUNT,
  FSOPEN,
  fsconfig,
  fsmount,
  fsopen,
  highFd,
  MOUNT_ATTR,
  O,
  openat,
} from '@corral/sys';

const VIEW_ATTRS = MOUNT_ATTR.RDONLY | MOUNT_ATTR.NOSUID | MOUNT_ATTR.NODEV;

function detachedMount(fsfd: number): number {
  try {
    fsconfig(fsfd, FSCONFIG.CMD_CREATE, null);
    return fsmount(fsfd, FSMOUNT.CLOEXEC, VIEW_ATTRS);
  } finally {
    close(fsfd);
  }
}

/**
 * An fd (O_PATH, close-on-exec) on the root of a read-only view of the host folder `dir`.
 * overlayfs needs two lower layers without an upper one: the second is an empty tmpfs that
 * exists only as a detached mount.
 */
export function readOnlyView(dir: string): number {
  const tmpfs = fsopen('tmpfs', FSOPEN.CLOEXEC);
  fsconfig(tmpfs, FSCONFIG.SET_STRING, 'size', '4k');
  const empty = detachedMount(tmpfs);
  try {
    const overlay = fsopen('overlay', FSOPEN.CLOEXEC);
    fsconfig(overlay, FSCONFIG.SET_STRING, 'lowerdir', `${escapeLowerdir(dir)}:/proc/self/fd/${empty}`);
    return detachedMount(overlay);
  } finally {
    close(empty);
  }
}

/** overlayfs splits lowerdir at ':' and takes '\' as an escape. */
function escapeLowerdir(dir: string): string {
  return dir.replace(/[\\:,]/g, (c) => `\\${c}`);
}

/**
 * An O_PATH fd (close-on-exec) on `file` seen through a read-only view of its folder, at a
 * high number: a process that spawns through `/proc/self/fd/N` must never have N taken over
 * by the child's stdio mapping (a keeper that has closed its sockets 3 and 4 opens it late).
 */
export function openSealed(file: string): number {
  const real = realpathSync(file);
  const view = readOnlyView(dirname(real));
  try {
    return highFd(openat(view, basename(real), O.PATH | O.CLOEXEC));
  } finally {
    close(view);
  }
}

// One per process, also when this module is loaded more than once (a process whose parts are
// separate bundles, as the engine's keeper): a second view would be opened after the process
// has closed fds of its own, at a number that a child's stdio mapping may take over.
const SEALED = Symbol.for('corral.runtime.sealedPaths');
const holder = globalThis as { [SEALED]?: Map<string, string> };
holder[SEALED] ??= new Map();
const sealedPaths: Map<string, string> = holder[SEALED];

/**
 * A node binary (this process's by default) through a read-only view, as a path to spawn:
 * what the runtime runs as a container's init and as the helper of exec. The fd stays open
 * for the life of the process; exec finds the file through /proc/self/fd even though the fd
 * is close-on-exec.
 */
export function sealedNode(node = process.execPath): string {
  let path = sealedPaths.get(node);
  if (path === undefined) {
    path = `/proc/self/fd/${openSealed(node)}`;
    sealedPaths.set(node, path);
  }
  return path;
}
