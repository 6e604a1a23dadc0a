// A program that only execs another: what a vfork child of the runtime execs first, so that
// the container's program never starts while /proc/self/exe is the runtime's own node (the
// vfork child shares the runtime's memory, so its exe is node). Without it, a program
// `#!/proc/self/exe` (or a symlink to it) would run the host's node inside the container, and
// root there could write to it (CVE-2019-5736). The trampoline lives in a sealed memfd: what
// /proc/self/exe shows during that exec can be neither written nor replaced.
// It is 192 bytes of x86-64 machine code in a static ELF, no loader and no libc:
//   if argv[0] is not TRAMPOLINE_ARGV0 (a #! or symlink back to it): exit 126;
//   execve(argv[1], &argv[2], envp); exit 127 if that failed with ENOENT, else 126.
import { arch } from 'node:process';
import { check, errno, lazy, libc } from './libc.js';
import { highFd } from './vfork.js';

export const TRAMPOLINE_ARGV0 = '\x01crl';

const ELF_X64 =
  '7f454c4602010100000000000000000002003e00010000007800010000000000' +
  '4000000000000000000000000000000000000000400038000100000000000000' +
  '0100000005000000000000000000000000000100000000000000010000000000' +
  'c000000000000000c0000000000000000010000000000000488b442408813801' +
  '63726c752f807804007529488b7c24104885ff741f488d742418488b0424488d' +
  '54c410b83b0000000f0583f8febf7f0000007405bf7e000000b8e70000000f05';

const MFD_CLOEXEC = 1;
const MFD_ALLOW_SEALING = 2;
const MFD_EXEC = 0x10;
const F_ADD_SEALS = 1033;
const F_SEAL_SEAL = 1;
const F_SEAL_SHRINK = 2;
const F_SEAL_GROW = 4;
const F_SEAL_WRITE = 8;
const F_SEAL_EXEC = 0x20;
const EINVAL = 22;

const f = lazy(() => ({
  memfdCreate: libc.func('int memfd_create(const char *name, unsigned int flags)'),
  write: libc.func('intptr_t write(int fd, const void *buf, size_t count)'),
  fcntl: libc.func('int fcntl(int fd, int cmd, int arg)'),
}));

let fd: number | undefined;

/**
 * An fd (close-on-exec) of the trampoline in a sealed memfd, made once per process: exec it
 * (fexecve) with argv [TRAMPOLINE_ARGV0, file, ...the program's argv].
 */
export function trampolineFd(): number {
  if (fd !== undefined) return fd;
  if (arch !== 'x64') throw new Error(`@corral/sys: no exec trampoline for ${arch}`);
  const code = Buffer.from(ELF_X64, 'hex');
  let m = Number(f.memfdCreate('corral-exec', MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC));
  // Kernels before 6.3 know no MFD_EXEC (and make every memfd executable).
  if (m === -1 && errno() === EINVAL)
    m = Number(f.memfdCreate('corral-exec', MFD_CLOEXEC | MFD_ALLOW_SEALING));
  check('memfd_create', m, []);
  if (Number(f.write(m, code, code.length)) !== code.length)
    throw new Error('@corral/sys: writing the exec trampoline');
  const seals = F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE;
  if (f.fcntl(m, F_ADD_SEALS, seals | F_SEAL_EXEC) === -1)
    check('fcntl(F_ADD_SEALS)', f.fcntl(m, F_ADD_SEALS, seals), []);
  fd = highFd(m);
  return fd;
}
