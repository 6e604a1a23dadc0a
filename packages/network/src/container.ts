import { closeSync, fstatSync, openSync, writeSync } from 'node:fs';
import { fdPath, O, openInRoot } from '@corral/sys';
import { NetworkError } from './errors.js';

/** Docker's --network values. */
export type NetworkMode =
  | { kind: 'bridge' }
  | { kind: 'none' }
  | { kind: 'host' }
  | { kind: 'container'; container: string }
  | { kind: 'network'; network: string };

/** `bridge` (the default), `none`, `host`, `container:NAME`, or a user network's name. */
export function parseNetworkMode(value = 'bridge'): NetworkMode {
  if (value === 'bridge' || value === 'default' || value === '') return { kind: 'bridge' };
  if (value === 'none' || value === 'host') return { kind: value };
  if (value.startsWith('container:')) {
    const container = value.slice('container:'.length);
    if (!container)
      throw new NetworkError('InvalidArgument', 'invalid --network container: a container name is needed');
    return { kind: 'container', container };
  }
  return { kind: 'network', network: value };
}

/**
 * Writes `content` to `path` inside a container's root (`rootfd` from @corral/sys openRoot),
 * never through a host path string: the path resolves inside the root (a symlink such as
 * /etc -> / stays inside it), the file is created when missing, and an existing one is
 * replaced only if it is a regular file: a device node, a FIFO or a socket the image put
 * there is refused before it is opened for writing (opening it could reach a host device or
 * block).
 */
export function writeFileInRoot(rootfd: number, path: string, content: string, mode = 0o644): void {
  const pathFd = openInRoot(rootfd, path, O.PATH | O.NOFOLLOW | O.CLOEXEC, { create: 'file' });
  try {
    const st = fstatSync(pathFd);
    if (!st.isFile())
      throw new NetworkError(
        'InvalidArgument',
        `refusing to write ${path} in the container: it is not a regular file`,
      );
    // Reopened through the O_PATH fd: the very inode checked above, whatever the path now names.
    const fd = openSync(fdPath(pathFd), O.WRONLY | O.TRUNC | O.CLOEXEC, mode);
    try {
      writeSync(fd, content);
    } finally {
      closeSync(fd);
    }
  } finally {
    closeSync(pathFd);
  }
}

/** /etc/hosts, /etc/hostname and /etc/resolv.conf (whichever are given) inside the root. */
export function writeEtcFiles(
  rootfd: number,
  files: { hosts?: string; hostname?: string; resolvConf?: string },
): void {
  if (files.hosts !== undefined) writeFileInRoot(rootfd, 'etc/hosts', files.hosts);
  if (files.hostname !== undefined) writeFileInRoot(rootfd, 'etc/hostname', files.hostname);
  if (files.resolvConf !== undefined) writeFileInRoot(rootfd, 'etc/resolv.conf', files.resolvConf);
}
