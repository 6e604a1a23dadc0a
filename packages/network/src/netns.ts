import { closeSync, mkdirSync, openSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  CLONE,
  close,
  ioctl,
  isErrno,
  isMountPoint,
  MNT,
  MS,
  mount,
  NETDEV,
  O,
  setns,
  socket,
  umount2,
  unshare,
} from '@corral/sys';

/**
 * Network namespaces that outlive the process that made them: the namespace file
 * (/proc/thread-self/ns/net) is bind-mounted onto an empty file under the engine's own
 * state folder, as `ip netns add` and the CNI reference tools do. A bind mount rather than a
 * held fd because corral is daemonless: the CLI process that creates a container exits, the
 * runtime joins the namespace by path (the OCI spec's `linux.namespaces[].path`), the CNI
 * plugins take a path (CNI_NETNS), and a later process (rm, the start-up reconciliation)
 * finds every namespace corral made by listing one folder, also after a SIGKILL.
 */
export class NetnsDir {
  constructor(readonly dir: string) {}

  path(id: string): string {
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(id)) throw new TypeError(`bad network namespace id ${id}`);
    return join(this.dir, id);
  }

  /**
   * Makes a fresh network namespace pinned at path(id), with `lo` up. Only the calling (main)
   * thread enters the new namespace, and only for the three synchronous calls that pin it and
   * make a socket in it; it returns to the namespace it came from before anything else runs
   * on it. The socket stays the new namespace's: through it, `lo` is brought up (what the CNI
   * loopback plugin does, without a process of its own).
   */
  create(id: string): string {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const target = this.path(id);
    closeSync(openSync(target, O.CREAT | O.EXCL | O.RDONLY | O.CLOEXEC, 0o444));
    const home = openSync('/proc/thread-self/ns/net', O.RDONLY | O.CLOEXEC);
    let moved = false;
    let sock = -1;
    try {
      unshare(CLONE.NEWNET);
      moved = true;
      mount('/proc/thread-self/ns/net', target, null, MS.BIND);
      sock = socket(NETDEV.AF_INET, NETDEV.SOCK_DGRAM | NETDEV.SOCK_CLOEXEC);
    } catch (e) {
      if (moved) this.unpin(target);
      rmSync(target, { force: true });
      throw e;
    } finally {
      if (moved) setns(home, CLONE.NEWNET);
      closeSync(home);
    }
    try {
      loopbackUp(sock);
    } catch (e) {
      this.remove(id);
      throw e;
    } finally {
      close(sock);
    }
    return target;
  }

  private unpin(target: string): void {
    try {
      umount2(target, MNT.DETACH);
    } catch {
      // not pinned
    }
  }

  /** Unpins and removes path(id); the namespace goes when nothing else uses it. Idempotent. */
  remove(id: string): void {
    const target = this.path(id);
    try {
      umount2(target, MNT.DETACH);
    } catch (e) {
      if (!isErrno(e, 'EINVAL', 'ENOENT')) throw e;
    }
    rmSync(target, { force: true });
  }

  /** The ids of every namespace file in the folder (pinned or left half-made). */
  list(): string[] {
    try {
      return readdirSync(this.dir).filter((n) => !n.startsWith('.'));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
  }

  isPinned(id: string): boolean {
    return isMountPoint(this.path(id));
  }
}

/** `ip link set lo up` through a socket of the namespace (netdevice(7) SIOCGIFFLAGS/SIOCSIFFLAGS). */
function loopbackUp(sock: number): void {
  const ifr = Buffer.alloc(40); // struct ifreq: the name, then ifr_flags (a short)
  ifr.write('lo', 0, 'latin1');
  ioctl(sock, NETDEV.SIOCGIFFLAGS, ifr);
  ifr.writeUInt16LE(ifr.readUInt16LE(16) | NETDEV.IFF_UP, 16);
  ioctl(sock, NETDEV.SIOCSIFFLAGS, ifr);
}
