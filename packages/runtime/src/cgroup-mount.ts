// A mount of type `cgroup` in the spec (podman and `runc spec` ask for one at /sys/fs/cgroup):
// the container's own cgroups, as runc mounts them. On a v1 or hybrid host a tmpfs holds one
// folder per hierarchy; in a cgroup namespace of the container's own each folder is a fresh
// mount of its hierarchy (rooted at the container's cgroup by the namespace), otherwise a bind
// of the container's cgroup folder from the host's mount (read-only when the mount says ro).
// Nothing above the container's cgroup is shown; the tmpfs stays writable, as runc leaves it.
// Runs in the init before pivot_root, through fds in the root.
import { readFileSync } from 'node:fs';
import { posix } from 'node:path';
import {
  AT,
  close,
  fdPath,
  MOUNT_ATTR,
  MOVE_MOUNT,
  MS,
  mkdirat,
  mount,
  mountSetattr,
  moveMount,
  O,
  OPEN_TREE,
  openat,
  openInRoot,
  openRoot,
  openTree,
  readMountInfo,
  symlinkat,
} from '@corral/sys';
import { type ParsedMountOptions, parseMountOptions } from './mount-options.js';
import { step } from './process-setup.js';
import type { OciMount } from './spec.js';

interface Hierarchy {
  /** Folder name under /sys/fs/cgroup (`memory`, `cpu,cpuacct`, `systemd`, `unified`). */
  name: string;
  fsType: 'cgroup' | 'cgroup2';
  /** Mount data for a fresh mount (`memory`, `name=systemd`, '' for cgroup2). */
  data: string;
  /** The container's folder in the host's mount, or null when it is the hierarchy's root. */
  hostDir: string | null;
}

const SECURE = MS.NOSUID | MS.NODEV | MS.NOEXEC;

/** This process's cgroup per hierarchy: controllers joined by ',' ('' for v2) -> path. */
function ownCgroups(): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of readFileSync('/proc/self/cgroup', 'utf8').split('\n')) {
    const m = /^\d+:([^:]*):(.*)$/.exec(line);
    if (m) out.set(m[1], m[2]);
  }
  return out;
}

/** The host's cgroup hierarchies under /sys/fs/cgroup, and whether we are in a cgroup namespace. */
function hierarchies(): { list: Hierarchy[]; namespaced: boolean; unifiedRoot: boolean } {
  const own = ownCgroups();
  const list: Hierarchy[] = [];
  let namespaced = false;
  let unifiedRoot = false;
  for (const m of readMountInfo()) {
    if (m.fsType !== 'cgroup' && m.fsType !== 'cgroup2') continue;
    if (m.fsType === 'cgroup2' && m.mountPoint === '/sys/fs/cgroup') unifiedRoot = true;
    // A hybrid host's cgroup2 (/sys/fs/cgroup/unified) holds no controllers: runc leaves it out.
    else if (m.fsType === 'cgroup2' || posix.dirname(m.mountPoint) !== '/sys/fs/cgroup') continue;
    // A mount made outside our cgroup namespace shows its root above ours: "/..".
    if (m.root.startsWith('/..')) namespaced = true;
    const controllers =
      m.fsType === 'cgroup2'
        ? []
        : m.superOptions
            .split(',')
            .filter((o) => !['rw', 'ro', 'noprefix', 'xattr', 'clone_children'].includes(o))
            .filter((o) => !o.startsWith('release_agent='));
    const key = m.fsType === 'cgroup2' ? '' : controllers.join(',');
    const path = own.get(key);
    const rel = path === undefined ? null : posix.relative(m.root, path);
    list.push({
      name: posix.basename(m.mountPoint),
      fsType: m.fsType,
      data: controllers.join(','),
      hostDir: rel === null || rel === '' || rel.startsWith('..') ? null : posix.join(m.mountPoint, rel),
    });
  }
  return { list, namespaced, unifiedRoot };
}

/** Binds `hostDir` (nosuid, nodev, noexec; read-only unless `flags` says rw) onto the O_PATH fd `target`. */
function bindCgroup(hostDir: string, target: number, flags: number): void {
  const tree = openTree(AT.FDCWD, hostDir, OPEN_TREE.CLONE | OPEN_TREE.CLOEXEC);
  try {
    mountSetattr(tree, '', AT.EMPTY_PATH, {
      set:
        (flags & MS.RDONLY ? MOUNT_ATTR.RDONLY : 0) |
        MOUNT_ATTR.NOSUID |
        MOUNT_ATTR.NODEV |
        MOUNT_ATTR.NOEXEC,
    });
    moveMount(tree, '', target, '', MOVE_MOUNT.F_EMPTY_PATH | MOVE_MOUNT.T_EMPTY_PATH);
  } finally {
    close(tree);
  }
}

/** One hierarchy onto the O_PATH fd `dir`: a fresh mount in a cgroup namespace, else a bind. */
function mountHierarchy(h: Hierarchy, dir: number, namespaced: boolean, flags: number): void {
  if (namespaced) mount(h.fsType, fdPath(dir), h.fsType, flags | SECURE, h.data || null);
  else if (h.hostDir) bindCgroup(h.hostDir, dir, flags);
}

/** Mounts the container's cgroups at `destination` inside the root (an fd of the rootfs). */
export function mountCgroupTree(root: number, destination: string, o: ParsedMountOptions): void {
  const { list, namespaced, unifiedRoot } = hierarchies();
  const flags = o.flags & MS.RDONLY;
  if (unifiedRoot) {
    // A v2 host: one hierarchy, mounted at the destination itself.
    const target = openInRoot(root, destination, O.PATH, { create: 'dir' });
    try {
      mountHierarchy({ ...list.find((h) => h.fsType === 'cgroup2')! }, target, namespaced, flags | MS.RDONLY);
    } finally {
      close(target);
    }
    return;
  }
  const target = openInRoot(root, destination, O.PATH, { create: 'dir' });
  try {
    mount('tmpfs', fdPath(target), 'tmpfs', SECURE, 'mode=755');
  } finally {
    close(target);
  }
  // The tmpfs sits on top of what that fd held: open the destination again.
  const top = openInRoot(root, destination, O.PATH);
  try {
    for (const h of list) {
      mkdirat(top, h.name, 0o555);
      const dir = openat(top, h.name, O.PATH | O.NOFOLLOW | O.DIRECTORY | O.CLOEXEC);
      try {
        mountHierarchy(h, dir, namespaced, flags);
      } finally {
        close(dir);
      }
      // Joined controllers (cpu,cpuacct) are also reachable by each name, as on the host.
      if (h.name.includes(','))
        for (const alias of h.name.split(','))
          if (!list.some((x) => x.name === alias)) symlinkat(h.name, top, alias);
    }
  } finally {
    close(top);
  }
}

/** A spec mount of type `cgroup`, in the rootfs at `rootfs` (a host path of corral's own). */
export function mountCgroups(rootfs: string, m: OciMount): void {
  const root = openRoot(rootfs);
  try {
    step(`mounting cgroup on ${m.destination}`, () =>
      mountCgroupTree(root, m.destination, parseMountOptions(m.options)),
    );
  } finally {
    close(root);
  }
}
