// Handing an fd to another process over a unix socket (SCM_RIGHTS), as an OCI runtime hands a
// container's terminal to its caller (`--console-socket`): Node's net module cannot send fds.
import { SyscallError } from './errors.js';
import { check, koffi, lazy, libc, namedType } from './libc.js';

const sock = lazy(() => {
  const iovec = namedType('corral_iovec', () =>
    koffi.struct('corral_iovec', { base: 'void *', len: 'size_t' }),
  );
  // Declared by name for sendmsg's prototype below.
  namedType('corral_msghdr', () =>
    koffi.struct('corral_msghdr', {
      name: 'void *',
      namelen: 'uint32_t',
      iov: koffi.pointer(iovec),
      iovlen: 'size_t',
      control: 'void *',
      controllen: 'size_t',
      flags: 'int',
    }),
  );
  return {
    socket: libc.func('int socket(int domain, int type, int protocol)'),
    connect: libc.func('int connect(int fd, const void *addr, uint32_t len)'),
    sendmsg: libc.func('intptr_t sendmsg(int fd, const corral_msghdr *msg, int flags)'),
    close: libc.func('int close(int fd)'),
  };
});

const AF_UNIX = 1;
const SOCK_STREAM = 1;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SCM_RIGHTS = 1;
const MSG_NOSIGNAL = 0x4000;
/** sizeof(struct sockaddr_un): a 2-byte family and 108 bytes of path. */
const SOCKADDR_UN = 110;

/** A connected unix stream socket (close-on-exec) to the socket file at `path`. */
export function connectUnix(path: string): number {
  const name = Buffer.from(path);
  if (name.length >= SOCKADDR_UN - 2) throw new SyscallError('connect', 36 /* ENAMETOOLONG */, [path]);
  const fd = check('socket', sock.socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), []);
  const addr = Buffer.alloc(SOCKADDR_UN);
  addr.writeUInt16LE(AF_UNIX, 0);
  name.copy(addr, 2);
  if (sock.connect(fd, addr, SOCKADDR_UN) === -1) {
    const err = new SyscallError('connect', koffi.errno(), [path]);
    sock.close(fd);
    throw err;
  }
  return fd;
}

/**
 * Sends `fd` over the connected unix socket `socket` with SCM_RIGHTS, `name` as the message's
 * data (runc sends the terminal's path; receivers read the fd and may ignore the name).
 */
export function sendFd(socket: number, fd: number, name: string): void {
  const data = Buffer.from(name || ' ');
  // struct cmsghdr { size_t len; int level; int type; } followed by one int, padded to 8.
  const control = Buffer.alloc(24);
  control.writeBigUInt64LE(20n, 0);
  control.writeInt32LE(SOL_SOCKET, 8);
  control.writeInt32LE(SCM_RIGHTS, 12);
  control.writeInt32LE(fd, 16);
  const msg = {
    name: null,
    namelen: 0,
    iov: { base: data, len: data.length },
    iovlen: 1,
    control,
    controllen: control.length,
    flags: 0,
  };
  check('sendmsg', Number(sock.sendmsg(socket, msg, MSG_NOSIGNAL)), [fd]);
}

/** Connects to the unix socket at `path`, sends `fd` (SCM_RIGHTS) and closes the connection. */
export function sendFdTo(path: string, fd: number, name: string): void {
  const socket = connectUnix(path);
  try {
    sendFd(socket, fd, name);
  } finally {
    sock.close(socket);
  }
}
