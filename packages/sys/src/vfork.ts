// A child process that runs JavaScript of this process before it becomes another program,
// without a second Node start: clone(2) with CLONE_VM | CLONE_VFORK (runc's nsexec does the
// same in C). The child shares this process's memory and V8 isolate; the calling thread is
// suspended until the child execs or exits, so the isolate has one thread running at a time.
//
// The child's JS must return normally: a child that called execve from inside its callback
// would leave V8 and N-API mid-call (open handle scopes, a try/catch handler and an entry
// frame on a stack that is gone), and this process aborts on its next return to JS. So the
// child runs as a chain of ucontexts (uc_link): A runs the JS callback, then B execve()s the
// program, then (only if execve failed) C writes errno to a close-on-exec pipe and D _exits.
//
// koffi runs native calls on a stack of its own and runs a callback's JS back on the main
// thread's stack; a koffi call made by the callback takes its frame below the callback's
// native stack pointer. A's stack is therefore carved from koffi's own stack, below the
// clone call's frames (found with dl_iterate_phdr, which hands its callback a pointer to a
// local of its own frame). x86-64 glibc only: ucontext_t's layout is per architecture.
//
// makecontext passes its arguments as 64-bit values: ints go as 'long'.
//
// What the child may do: pure JS, koffi calls that are plain syscalls, and Node's synchronous
// fs calls (libuv runs them on the calling thread, without its loop or pool). Never async
// I/O, timers or promises (the loop is the suspended thread's); never glibc's set*id
// wrappers (they signal the other threads of this process: use the raw syscalls); never
// process.exit or process.chdir (shared state). Keep it small and allocation-light: a GC
// it triggers works on the shared heap (correct, as the parent thread is parked, but slow).
import { arch } from 'node:process';
import { check, errno, fn, koffi, lazy, libc, namedType } from './libc.js';
import { syscallNumber } from './seccomp.js';

/** The program the child becomes: a path, or an fd of it (fexecve). */
export type ExecTarget = { argv: readonly string[]; envp: readonly string[] } & (
  | { path: string }
  | { fd: number }
);

/** What vforkExec returns once the child has exec'd or exited. */
export interface VforkResult {
  pid: number;
  /** The errno of the child's execve when it failed (the child then exits 127), else null. */
  execErrno: number | null;
}

const UC_SIZE = 968;
const UC_LINK = 8;
const UC_STACK_SP = 16;
const UC_STACK_SIZE = 32;
const UC_SIGMASK = 296;
const CLONE_VM = 0x100;
const CLONE_VFORK = 0x4000;
const SIGCHLD = 17;
const O_CLOEXEC = 0o2000000;
const SIGKILL = 9;
const SIGSTOP = 19;
const EINTR = 4;
const SETUP_FAILED = 125;
const F_DUPFD_CLOEXEC = 1030;
/** A's stack: the child's callback and the koffi calls it makes. */
const A_STACK = 256 * 1024;
/** Between the clone call's frames and A's stack; the clone child's first frames go here. */
const GAP = 64 * 1024;

const f = lazy(() => ({
  clone: libc.func('int clone(void *fn, uint64_t stack, int flags, void *arg)'),
  getcontext: libc.func('int getcontext(void *ucp)'),
  makecontext: libc.func('void makecontext(void *ucp, void *fn, int argc, ...)'),
  dlsym: libc.func('void *dlsym(void *handle, const char *name)'),
  dlIteratePhdr: libc.func('int dl_iterate_phdr(void *cb, void *data)'),
  errnoLocation: libc.func('void *__errno_location(void)'),
  pipe2: libc.func('int pipe2(_Out_ int *fds, int flags)'),
  read: libc.func('intptr_t read(int fd, void *buf, size_t count)'),
  close: libc.func('int close(int fd)'),
  fcntl: libc.func('int fcntl(int fd, int cmd, int arg)'),
  sigaction: libc.func('long syscall(long nr, int sig, void *act, void *old, size_t size)'),
  phdrProto: namedType('corral_phdr_cb', () =>
    koffi.proto('int corral_phdr_cb(void *info, size_t size, void *data)'),
  ),
  childProto: namedType('corral_vfork_child', () => koffi.proto('void corral_vfork_child(void)')),
}));

/** libc's functions that the child's contexts run, as addresses. */
const native = lazy(() => {
  const sym = (name: string): unknown => {
    const p = f.dlsym(null, name);
    if (!p) throw new Error(`@corral/sys: ${name} not found in libc`);
    return p;
  };
  return {
    setcontext: sym('setcontext'),
    execve: sym('execve'),
    fexecve: sym('fexecve'),
    write: sym('write'),
    exit: sym('_exit'),
  };
});

/**
 * Loads koffi and libc and declares the calls that make a container (libc's table, vforkExec's)
 * now, for a process that waits idle before its first call (a parked or early keeper): the
 * call then pays none of it (10-20 ms here).
 */
export function preloadNative(): void {
  void fn.getpid;
  void f.clone;
  if (vforkSupported()) void native.execve;
}

/** True where vforkExec works (x86-64 Linux with glibc). */
export function vforkSupported(): boolean {
  return arch === 'x64';
}

/** An address in koffi's native stack just below the frames of a call made from here. */
function koffiStackHere(): bigint {
  let at = 0n;
  const cb = koffi.register((info: unknown) => {
    at = koffi.address(info);
    return 1;
  }, koffi.pointer(f.phdrProto));
  try {
    f.dlIteratePhdr(cb, null);
  } finally {
    koffi.unregister(cb);
  }
  if (!at) throw new Error('@corral/sys: could not find koffi stack');
  return at & ~15n;
}

/** A context from getcontext, on `stack` (a Buffer or an address and size), linked to `link`. */
function context(
  stack: Buffer | { at: bigint; size: number },
  link: Buffer | null,
  blockAll: boolean,
): Buffer {
  const uc = Buffer.alloc(UC_SIZE);
  if (f.getcontext(uc) !== 0) throw new Error(`getcontext: errno ${errno()}`);
  uc.writeBigUInt64LE(link ? koffi.address(link) : 0n, UC_LINK);
  const at = Buffer.isBuffer(stack) ? koffi.address(stack) : stack.at;
  uc.writeBigUInt64LE(at, UC_STACK_SP);
  uc.writeBigUInt64LE(BigInt(Buffer.isBuffer(stack) ? stack.length : stack.size), UC_STACK_SIZE);
  uc.fill(blockAll ? 0xff : 0, UC_SIGMASK, UC_SIGMASK + 8);
  return uc;
}

/** `fd` moved to a number of 256 or more (close-on-exec), where the limit allows: out of the way of a child's stdio mapping. */
export function highFd(fd: number): number {
  const high = f.fcntl(fd, F_DUPFD_CLOEXEC, 256);
  if (high < 0) return fd;
  f.close(fd);
  return high;
}

const cstring = (s: string) => Buffer.from(`${s}\0`);
function pointers(bufs: Buffer[]): Buffer {
  const out = Buffer.alloc(8 * (bufs.length + 1));
  bufs.forEach((b, i) => {
    out.writeBigUInt64LE(koffi.address(b), 8 * i);
  });
  return out;
}

/**
 * Every signal back to its default action, SIGPIPE and SIGXFSZ among them (Node ignores them,
 * and an ignored signal stays ignored across execve): for a process about to exec a program,
 * or a vfork child (which has its own copy of the actions). glibc's own 32 and 33 stay as this
 * process inherited them, as under runc (Go leaves those two alone).
 */
export function defaultSignalActions(): void {
  const act = Buffer.alloc(32); // struct kernel_sigaction, SIG_DFL
  const nrSigaction = syscallNumber('rt_sigaction');
  for (let sig = 1; sig <= 64; sig++) {
    if (sig !== SIGKILL && sig !== SIGSTOP && sig !== 32 && sig !== 33)
      f.sigaction(nrSigaction, sig, act, null, 8);
  }
}

/**
 * Runs `child` in a new process made by clone(CLONE_VM | CLONE_VFORK | `flags`, e.g. the
 * CLONE_NEW* namespaces), then execs the target it returns, or exits with the number it
 * returns. `child` must not throw (catch and return an exit code; report through variables
 * of this process: the memory is shared) and must keep to what the module comment allows.
 * The child starts with every signal blocked; it gets default signal actions and an empty
 * signal mask at exec. Returns when the child has exec'd or exited.
 */
export function vforkExec(flags: number, child: () => ExecTarget | number): VforkResult {
  if (!vforkSupported()) throw new Error(`vforkExec is not supported on ${arch}`);
  const fds = [0, 0];
  if (f.pipe2(fds, O_CLOEXEC) !== 0) throw new Error(`pipe2: errno ${errno()}`);
  // Out of the way of fds the child passes on (3 .. 3+N-1 may not all be open here): its
  // write end left open in the program would hold this process until the program ends.
  const [readFd, writeFd] = fds.map(highFd);
  fds[1] = writeFd;
  // Everything the native half of the child reads stays referenced until clone returns.
  const keep: unknown[] = [];
  try {
    const stackB = Buffer.alloc(16 * 1024);
    const stackC = Buffer.alloc(16 * 1024);
    const stackD = Buffer.alloc(16 * 1024);
    const D = context(stackD, null, true);
    f.makecontext(D, native.exit, 1, 'long', 127);
    const C = context(stackC, D, true);
    f.makecontext(C, native.write, 3, 'long', writeFd, 'void *', f.errnoLocation(), 'size_t', 4);
    const B = context(stackB, C, false);
    // Until the child aims it elsewhere, B exits 125: a child whose JS never got to the end
    // (a termination, a throw) must not resume B where getcontext took it, in this frame.
    f.makecontext(B, native.exit, 1, 'long', SETUP_FAILED);
    const aim = (target: ExecTarget | number) => {
      if (typeof target === 'number') {
        f.makecontext(B, native.exit, 1, 'long', target);
        return;
      }
      const argv = target.argv.map(cstring);
      const envp = target.envp.map(cstring);
      const argvp = pointers(argv);
      const envpp = pointers(envp);
      keep.push(argv, envp, argvp, envpp);
      if ('fd' in target) {
        f.makecontext(B, native.fexecve, 3, 'long', target.fd, 'void *', argvp, 'void *', envpp);
      } else {
        const path = cstring(target.path);
        keep.push(path);
        f.makecontext(B, native.execve, 3, 'void *', path, 'void *', argvp, 'void *', envpp);
      }
    };
    const run = () => {
      try {
        defaultSignalActions();
        aim(child());
      } catch {
        // B still exits 125 (or exits with the code aimed at before the throw).
      }
    };
    const cb = koffi.register(run, koffi.pointer(f.childProto));
    try {
      const here = koffiStackHere();
      const A = context({ at: here - BigInt(GAP + A_STACK), size: A_STACK }, B, true);
      f.makecontext(A, cb, 0);
      keep.push(A, B, C, D, stackB, stackC, stackD);
      const pid = f.clone(
        native.setcontext,
        here - BigInt(GAP / 2),
        CLONE_VM | CLONE_VFORK | SIGCHLD | flags,
        A,
      );
      if (pid < 0) throw new Error(`clone: errno ${errno()}`);
      f.close(writeFd);
      fds[1] = -1;
      const buf = Buffer.alloc(4);
      let n: number;
      do n = Number(f.read(readFd, buf, 4));
      while (n < 0 && errno() === EINTR);
      return { pid, execErrno: n === 4 ? buf.readInt32LE(0) : null };
    } finally {
      koffi.unregister(cb);
    }
  } finally {
    f.close(readFd);
    if (fds[1] >= 0) f.close(writeFd);
    keep.length = 0;
  }
}

/**
 * setgroups, setresgid and setresuid as raw syscalls, for the calling task alone: glibc's
 * wrappers signal every thread of the process to follow, which in a vfork child are the
 * parent's threads.
 */
export function setUserRaw(uid: number, gid: number, groups: readonly number[]): void {
  const list = groups.length ? Uint32Array.from(groups) : null;
  check('setgroups', Number(raw.sys_l_p(syscallNumber('setgroups'), groups.length, list)), [
    groups.join(','),
  ]);
  check('setresgid', Number(raw.sys_u3(syscallNumber('setresgid'), gid, gid, gid)), [gid]);
  check('setresuid', Number(raw.sys_u3(syscallNumber('setresuid'), uid, uid, uid)), [uid]);
}

const raw = lazy(() => ({
  sys_l_p: libc.func('long syscall(long nr, long a, const uint32_t *b)'),
  sys_u3: libc.func('long syscall(long nr, uint32_t a, uint32_t b, uint32_t c)'),
}));
