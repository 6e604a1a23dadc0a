// posix_spawn(3): how a process that has entered a container on one thread starts a program
// there. glibc's posix_spawn clones the calling thread (CLONE_VM | CLONE_VFORK) on a stack of
// its own and runs only its own code before execve, so it is safe in a multi-threaded Node
// process, and the child gets the calling thread's namespaces, root, credentials, capabilities,
// no_new_privs and seccomp filter (child_process.spawn would do the same from the main
// thread, but cannot make a terminal the child's controlling terminal).
import { SyscallError } from './errors.js';
import { check, fn, lazy, libc, nr } from './libc.js';

const spawnFn = lazy(() => ({
  actionsInit: libc.func('int posix_spawn_file_actions_init(void *fa)'),
  actionsDestroy: libc.func('int posix_spawn_file_actions_destroy(void *fa)'),
  addOpen: libc.func(
    'int posix_spawn_file_actions_addopen(void *fa, int fd, const char *path, int oflag, uint32_t mode)',
  ),
  addDup2: libc.func('int posix_spawn_file_actions_adddup2(void *fa, int fd, int newfd)'),
  attrInit: libc.func('int posix_spawnattr_init(void *attr)'),
  attrDestroy: libc.func('int posix_spawnattr_destroy(void *attr)'),
  setFlags: libc.func('int posix_spawnattr_setflags(void *attr, short flags)'),
  setSigmask: libc.func('int posix_spawnattr_setsigmask(void *attr, const void *set)'),
  setSigdefault: libc.func('int posix_spawnattr_setsigdefault(void *attr, const void *set)'),
  spawn: libc.func(
    'int posix_spawn(_Out_ int *pid, const char *path, void *fa, void *attr, const char **argv, const char **envp)',
  ),
}));

/** glibc's POSIX_SPAWN_* flags. */
const SETSIGDEF = 0x04;
const SETSIGMASK = 0x08;
const SETSID = 0x80;
/** Larger than glibc's posix_spawn_file_actions_t (80 bytes) and posix_spawnattr_t (336). */
const OPAQUE_SIZE = 1024;
const SIGSET_SIZE = 128;

/** A sigset_t with every signal a program may have a handler for (not SIGKILL, SIGSTOP, glibc's 32 and 33). */
function allSignals(): Buffer {
  const set = Buffer.alloc(SIGSET_SIZE);
  for (let sig = 1; sig <= 64; sig++) {
    if (sig === 9 || sig === 19 || sig === 32 || sig === 33) continue;
    const bit = sig - 1;
    set[bit >> 3] |= 1 << (bit & 7);
  }
  return set;
}

function checked(name: string, r: number, args: unknown[]): void {
  // posix_spawn and its helpers return the error number instead of setting errno.
  if (r !== 0) throw new SyscallError(name, r, args);
}

export interface SpawnProgramOptions {
  /** A terminal (a pty slave's path) opened as fd 0 in a new session, so that it becomes the controlling terminal, and dup'ed to 1 and 2. */
  terminal?: string;
}

/**
 * Starts `path` with `argv` and `envp` as a child of this process, from the calling thread,
 * with every signal's disposition reset to the default and no signal blocked (Node ignores
 * SIGPIPE, which a program must not inherit). Fds without FD_CLOEXEC are inherited.
 * Returns the child's PID (in this process's PID namespace).
 */
export function spawnProgram(
  path: string,
  argv: readonly string[],
  envp: readonly string[],
  options: SpawnProgramOptions = {},
): number {
  const actions = Buffer.alloc(OPAQUE_SIZE);
  const attr = Buffer.alloc(OPAQUE_SIZE);
  checked('posix_spawn_file_actions_init', spawnFn.actionsInit(actions), []);
  try {
    checked('posix_spawnattr_init', spawnFn.attrInit(attr), []);
    try {
      let flags = SETSIGDEF | SETSIGMASK;
      if (options.terminal !== undefined) {
        flags |= SETSID;
        // O_RDWR without O_NOCTTY: opened by a session leader that has no controlling
        // terminal yet, the terminal becomes its controlling terminal.
        checked('posix_spawn_file_actions_addopen', spawnFn.addOpen(actions, 0, options.terminal, 2, 0), [
          options.terminal,
        ]);
        for (const fd of [1, 2])
          checked('posix_spawn_file_actions_adddup2', spawnFn.addDup2(actions, 0, fd), [fd]);
      }
      checked('posix_spawnattr_setflags', spawnFn.setFlags(attr, flags), [flags]);
      checked('posix_spawnattr_setsigmask', spawnFn.setSigmask(attr, Buffer.alloc(SIGSET_SIZE)), []);
      checked('posix_spawnattr_setsigdefault', spawnFn.setSigdefault(attr, allSignals()), []);
      const pid = [0];
      checked('posix_spawn', spawnFn.spawn(pid, path, actions, attr, [...argv, null], [...envp, null]), [
        path,
      ]);
      return pid[0];
    } finally {
      spawnFn.attrDestroy(attr);
    }
  } finally {
    spawnFn.actionsDestroy(actions);
  }
}

const CLOSE_RANGE_CLOEXEC = 4;

/**
 * Marks every fd from `first` on close-on-exec (close_range(2) with CLOSE_RANGE_CLOEXEC): what
 * a program must not inherit, without reading /proc/self/fd (which a process that entered
 * another PID namespace's mount namespace may not have).
 */
export function cloexecFrom(first: number): void {
  check('close_range', Number(fn.sys_i_i_u(nr('close_range'), first, -1, CLOSE_RANGE_CLOEXEC)), [first]);
}
