// What the init makes in a container's rootfs before pivot_root, while the host's `/` is
// still in view: the spec's mounts, the device nodes, the /dev links, the working directory.
// The rootfs belongs to the container, so none of its paths is ever handed to the kernel as a
// string (a component swapped for a symlink between a check and the mount would send the
// mount to the host: CVE-2021-30465). Each target is opened inside the root (openat2
// RESOLVE_IN_ROOT, see @corral/sys openInRoot), made relative to its parent's fd when missing,
// and used through its fd: mount(2) on /proc/self/fd/N, or a tree cloned with open_tree,
// given its flags while detached, and attached with move_mount onto the fd.
// Everything here is synchronous: the init's other threads are still on the host.
import { chmodSync, chownSync, fstatSync, statSync } from 'node:fs';
import { posix } from 'node:path';
import {
  AT,
  close,
  fdPath,
  isErrno,
  MOUNT_ATTR,
  MOVE_MOUNT,
  MS,
  makedev,
  mknodat,
  mount,
  mountSetattr,
  moveMount,
  O,
  OPEN_TREE,
  openat,
  openInRoot,
  openRoot,
  openTree,
  S_IF,
  symlinkat,
  unlinkat,
} from '@corral/sys';
import { type ParsedMountOptions, parseMountOptions } from './mount-options.js';
import { SetupError, step } from './process-setup.js';
import type { OciDevice, OciMount } from './spec.js';

/** Runs `f` with an fd of the rootfs, opened by its host path (corral's own, not the container's). */
function withRoot<T>(rootfs: string, f: (root: number) => T): T {
  const root = openRoot(rootfs);
  try {
    return f(root);
  } finally {
    close(root);
  }
}

/** Runs `f` with an O_PATH fd of `path` inside the root (made first when `create` says so). */
function withTarget<T>(
  root: number,
  path: string,
  create: 'dir' | 'file' | undefined,
  f: (fd: number) => T,
): T {
  const fd = openInRoot(root, path, O.PATH, create ? { create } : {});
  try {
    return f(fd);
  } finally {
    close(fd);
  }
}

const PER_MOUNT: [ms: number, attr: number][] = [
  [MS.RDONLY, MOUNT_ATTR.RDONLY],
  [MS.NOSUID, MOUNT_ATTR.NOSUID],
  [MS.NODEV, MOUNT_ATTR.NODEV],
  [MS.NOEXEC, MOUNT_ATTR.NOEXEC],
  [MS.NODIRATIME, MOUNT_ATTR.NODIRATIME],
  [MS.NOSYMFOLLOW, MOUNT_ATTR.NOSYMFOLLOW],
];
const ATIME_MASK = 0x70;

/** mount(2) flags of a bind (set and cleared) as mount_setattr(2) attributes. */
export function mountAttrs(flags: number, clear: number): { set: number; clear: number } {
  let set = 0;
  let clr = 0;
  for (const [ms, attr] of PER_MOUNT) {
    if (flags & ms) set |= attr;
    else if (clear & ms) clr |= attr;
  }
  const atime =
    flags & MS.NOATIME
      ? MOUNT_ATTR.NOATIME
      : flags & MS.STRICTATIME
        ? MOUNT_ATTR.STRICTATIME
        : flags & MS.RELATIME
          ? MOUNT_ATTR.RELATIME
          : null;
  if (atime !== null) {
    set |= atime;
    clr |= ATIME_MASK;
  }
  return { set, clear: clr };
}

/**
 * A bind mount: the source (a host path from the spec) is cloned with open_tree, gets its
 * flags and propagation while it is detached, then is attached onto the target's fd. Flags
 * apply to the top mount only, as a bind remount would; propagation follows `r` prefixes.
 */
function bindMount(root: number, m: OciMount, o: ParsedMountOptions, what: string): void {
  const source = m.source ?? '';
  let isFile: boolean;
  try {
    isFile = !statSync(source).isDirectory();
  } catch {
    throw new SetupError(`${what}: bind source ${source} does not exist`);
  }
  const tree = step(what, () =>
    openTree(AT.FDCWD, source, OPEN_TREE.CLONE | OPEN_TREE.CLOEXEC | (o.recursive ? AT.RECURSIVE : 0)),
  );
  try {
    const attrs = mountAttrs(o.flags, o.clear);
    if (attrs.set || attrs.clear) step(what, () => mountSetattr(tree, '', AT.EMPTY_PATH, attrs));
    const propagation = o.propagation & ~MS.REC;
    if (propagation) {
      const rec = o.propagation & MS.REC ? AT.RECURSIVE : 0;
      step(what, () => mountSetattr(tree, '', AT.EMPTY_PATH | rec, { propagation }));
    }
    withTarget(root, m.destination, isFile ? 'file' : 'dir', (target) =>
      step(what, () => moveMount(tree, '', target, '', MOVE_MOUNT.F_EMPTY_PATH | MOVE_MOUNT.T_EMPTY_PATH)),
    );
  } finally {
    close(tree);
  }
}

/**
 * sysfs cannot be mounted without a network namespace of our own: the host's /sys is bound
 * instead, every mount of it (cgroupfs, debugfs, ...) read-only, nosuid, nodev and noexec,
 * set on the detached clone before it is attached.
 */
function bindHostSysfs(target: number): void {
  const tree = openTree(AT.FDCWD, '/sys', OPEN_TREE.CLONE | OPEN_TREE.CLOEXEC | AT.RECURSIVE);
  try {
    mountSetattr(tree, '', AT.EMPTY_PATH | AT.RECURSIVE, {
      set: MOUNT_ATTR.RDONLY | MOUNT_ATTR.NOSUID | MOUNT_ATTR.NODEV | MOUNT_ATTR.NOEXEC,
    });
    moveMount(tree, '', target, '', MOVE_MOUNT.F_EMPTY_PATH | MOVE_MOUNT.T_EMPTY_PATH);
  } finally {
    close(tree);
  }
}

/** Mounts one of the spec's mounts inside the rootfs. */
export function doMount(rootfs: string, m: OciMount): void {
  const o = parseMountOptions(m.options);
  const what = `mounting ${m.type ?? 'bind'} on ${m.destination}`;
  withRoot(rootfs, (root) => {
    if (o.bind || m.type === 'bind') {
      bindMount(root, m, o, what);
      return;
    }
    withTarget(root, m.destination, 'dir', (target) => {
      try {
        mount(m.source ?? m.type ?? 'none', fdPath(target), m.type ?? null, o.flags, o.data || null);
      } catch (e) {
        if (m.type !== 'sysfs') throw new SetupError(`${what}: ${(e as Error).message}`);
        step(what, () => bindHostSysfs(target));
      }
    });
    // The new mount sits on top of what that fd held: find its root again, inside the root.
    if (o.propagation)
      withTarget(root, m.destination, undefined, (top) =>
        step(what, () => mount(null, fdPath(top), null, o.propagation)),
      );
  });
}

const DEVICE_TYPES = { b: S_IF.BLK, p: S_IF.FIFO, c: S_IF.CHR, u: S_IF.CHR } as const;

/** Opens entry `name` of folder `dir` itself (O_PATH, no symlink followed), or null when absent. */
function openEntry(dir: number, name: string): number | null {
  try {
    return openat(dir, name, O.PATH | O.NOFOLLOW | O.CLOEXEC);
  } catch (e) {
    if (isErrno(e, 'ENOENT')) return null;
    throw e;
  }
}

/**
 * A device node of the spec, made with mknodat in its folder's fd. Something already there
 * (a bind from the host) is left as it is; a symlink is replaced, never followed.
 */
export function createDevice(rootfs: string, d: OciDevice): void {
  const name = posix.basename(d.path);
  const mode = d.fileMode ?? 0o666;
  step(`creating device ${d.path}`, () =>
    withRoot(rootfs, (root) =>
      withTarget(root, posix.dirname(d.path), 'dir', (dir) => {
        if (!name || name === '..') throw new SetupError(`invalid device path ${d.path}`);
        const there = openEntry(dir, name);
        if (there !== null) {
          const link = fstatSync(there).isSymbolicLink();
          close(there);
          if (!link) return;
          unlinkat(dir, name);
        }
        const type = DEVICE_TYPES[d.type as keyof typeof DEVICE_TYPES] ?? S_IF.CHR;
        mknodat(dir, name, type | mode, makedev(d.major ?? 0, d.minor ?? 0));
        const fd = openat(dir, name, O.PATH | O.NOFOLLOW | O.CLOEXEC);
        try {
          if (fstatSync(fd).isSymbolicLink()) throw new SetupError(`${d.path} changed while it was made`);
          // Through the fd's magic link: the node itself, whatever its name leads to now.
          chmodSync(fdPath(fd), mode);
          chownSync(fdPath(fd), d.uid ?? 0, d.gid ?? 0);
        } finally {
          close(fd);
        }
      }),
    ),
  );
}

/** Symlinks that programs expect in /dev (runc makes the same ones), made in /dev's fd. */
export function devSymlinks(rootfs: string): void {
  withRoot(rootfs, (root) =>
    withTarget(root, '/dev', 'dir', (dev) => {
      const links: [string, string][] = [
        ['/proc/self/fd', 'fd'],
        ['/proc/self/fd/0', 'stdin'],
        ['/proc/self/fd/1', 'stdout'],
        ['/proc/self/fd/2', 'stderr'],
      ];
      try {
        close(openInRoot(root, '/dev/pts/ptmx', O.PATH));
        links.push(['pts/ptmx', 'ptmx']);
      } catch {
        // no devpts of its own: no /dev/ptmx link
      }
      for (const [target, name] of links) {
        step(`linking /dev/${name}`, () => {
          try {
            symlinkat(target, dev, name);
          } catch (e) {
            if (!isErrno(e, 'EEXIST')) throw e;
          }
        });
      }
    }),
  );
}

/** Makes the working directory (and the folders on its way) inside the rootfs, when missing. */
export function ensureWorkdir(rootfs: string, cwd: string): void {
  step(`creating the working directory ${cwd}`, () =>
    withRoot(rootfs, (root) => withTarget(root, cwd, 'dir', () => {})),
  );
}
