// /dev/fuse and the FUSE mount: what a userspace filesystem server needs of the kernel before
// it speaks the protocol. The protocol itself lives with the servers (@corral/unionfs's fuse/).
import { mount } from './calls.js';
import { O } from './constants.js';
import { SyscallError } from './errors.js';
import { check, errno, fn } from './libc.js';

/** _IOC(dir, 229, nr, size) for the FUSE device's ioctls (the generic encoding: x86_64, arm64). */
const iocFuse = (dir: number, nr: number, size: number) =>
  ((dir << 30) | (size << 16) | (229 << 8) | nr) >>> 0;
/** FUSE_DEV_IOC_CLONE: attaches a fresh /dev/fuse fd to the connection of another. */
const IOC_CLONE = iocFuse(2, 0, 4);
/** FUSE_DEV_IOC_BACKING_OPEN / _CLOSE: register a backing file for passthrough (6.9+). */
const IOC_BACKING_OPEN = iocFuse(1, 1, 16);
const IOC_BACKING_CLOSE = iocFuse(1, 2, 4);

/** Opens /dev/fuse for a new connection (read/write, close-on-exec). */
export function openFuseDevice(): number {
  const fd = fn.openat(-100, '/dev/fuse', O.RDWR | O.CLOEXEC, 0);
  if (fd < 0) {
    const e = errno();
    throw new SyscallError(
      'open',
      e,
      ['/dev/fuse'],
      e === 2 ? 'no /dev/fuse: load the fuse module (modprobe fuse)' : undefined,
    );
  }
  return fd;
}

/**
 * A second fd on the connection that `fd` serves (FUSE_DEV_IOC_CLONE), so that each thread
 * reading requests has its own processing queue in the kernel.
 */
export function cloneFuseDevice(fd: number): number {
  const clone = openFuseDevice();
  const arg = Buffer.alloc(4);
  arg.writeUInt32LE(fd);
  if (fn.ioctl(clone, IOC_CLONE, arg) < 0) {
    const e = errno();
    fn.close(clone);
    throw new SyscallError('ioctl', e, [fd, 'FUSE_DEV_IOC_CLONE']);
  }
  return clone;
}

export interface FuseMountOptions {
  /** The mount's source as /proc/mounts shows it. */
  source?: string;
  /** Shown as the type `fuse.<subtype>`. */
  subtype?: string;
  /** Let users other than the mounter in (a container's processes need it). Default true. */
  allowOther?: boolean;
  /** Let the kernel check permissions from the modes the server reports. Default true. */
  defaultPermissions?: boolean;
  /** Mount read-only (MS_RDONLY). */
  readonly?: boolean;
  /** Further mount(2) flags (MS_*), e.g. MS.NOSUID. */
  flags?: number;
  /** Largest READ the kernel sends, in bytes. */
  maxRead?: number;
}

/**
 * Mounts the connection of an open /dev/fuse `fd` at `target` with mount(2)
 * (`fd=N,rootmode=40000,user_id=0,group_id=0,...`). The kernel then queues FUSE_INIT on `fd`;
 * accesses to the mount wait until the server answers it.
 */
export function mountFuse(target: string, fd: number, options: FuseMountOptions = {}): void {
  const data = [`fd=${fd}`, 'rootmode=40000', 'user_id=0', 'group_id=0'];
  if (options.allowOther ?? true) data.push('allow_other');
  if (options.defaultPermissions ?? true) data.push('default_permissions');
  if (options.maxRead) data.push(`max_read=${options.maxRead}`);
  const type = options.subtype ? `fuse.${options.subtype}` : 'fuse';
  mount(
    options.source ?? 'fuse',
    target,
    type,
    (options.flags ?? 0) | (options.readonly ? 1 : 0),
    data.join(','),
  );
}

/**
 * Registers `fd` (an open regular file) as a passthrough backing file of the connection on
 * `devFd` and returns its id, for fuse_open_out.backing_id. Needs CAP_SYS_ADMIN and a kernel
 * with FUSE passthrough (6.9+). Returns -errno rather than throwing: servers fall back to
 * plain READ/WRITE on failure.
 */
export function fuseBackingOpen(devFd: number, fd: number, map = Buffer.alloc(16)): number {
  map.fill(0);
  map.writeInt32LE(fd, 0);
  const id = fn.ioctl(devFd, IOC_BACKING_OPEN, map);
  return id < 0 ? -errno() : id;
}

/** Drops a backing id (the kernel keeps the file while open files still use it). */
export function fuseBackingClose(devFd: number, id: number, arg = Buffer.alloc(4)): void {
  arg.writeUInt32LE(id);
  check('ioctl', fn.ioctl(devFd, IOC_BACKING_CLOSE, arg), [devFd, 'FUSE_DEV_IOC_BACKING_CLOSE', id]);
}
