// What a container's init and an exec'd process both do before they become the program.
// Synchronous on purpose: both run after namespace changes that only their main thread made.
import { chownSync, closeSync } from 'node:fs';
import { ExecError } from '@corral/pidns';
import {
  capabilityMask,
  capset,
  clearCloexec,
  cloexecFrom,
  defaultSignalActions,
  dropBoundingCapability,
  dup2,
  execve,
  isErrno,
  keepCapabilities,
  lastCapability,
  loadSeccompFilter,
  openPty,
  type Pty,
  parseCapability,
  prlimit,
  RLIMIT,
  type RlimitName,
  raiseAmbientCapability,
  setControllingTerminal,
  setgroups,
  setresgid,
  setresuid,
  setsid,
  setUserRaw,
  setWindowSize,
  umask,
} from '@corral/sys';
import { compileProfile, type OciSeccomp } from './seccomp.js';
import type { OciProcess } from './spec.js';

/** Sets process.rlimits on this process (the init's and an exec's; the program inherits them). */
export function setRlimits(rlimits: OciProcess['rlimits']): void {
  for (const r of rlimits ?? []) {
    const name = r.type.replace(/^RLIMIT_/, '') as RlimitName;
    if (RLIMIT[name] === undefined) throw new SetupError(`unknown rlimit ${r.type}`);
    try {
      // RLIM_INFINITY (2^64-1) does not survive JSON as a number: anything that large is it.
      const lim = (v: number) => (v >= 2 ** 64 - 1 ? Number.POSITIVE_INFINITY : v);
      prlimit(0, RLIMIT[name], { soft: lim(r.soft), hard: lim(r.hard) });
    } catch (e) {
      throw new SetupError(
        `setting ${r.type} to ${r.soft}:${r.hard}: ${(e as Error).message} (the hard limit cannot be raised above the runtime's own without CAP_SYS_RESOURCE)`,
      );
    }
  }
}

/** A setup failure, with the exit code the runtime reports (125 unless the program is at fault). */
export class SetupError extends Error {
  constructor(
    message: string,
    readonly exitCode = 125,
  ) {
    super(message);
  }
}

/** Runs one setup step; a failure names the step. */
export function step<T>(what: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof SetupError || e instanceof ExecError) throw e;
    throw new SetupError(`${what}: ${(e as Error).message}`);
  }
}

export function envObject(env: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of env) {
    const i = e.indexOf('=');
    if (i > 0) out[e.slice(0, i)] = e.slice(i + 1);
  }
  return out;
}

/**
 * A terminal for the process, opened inside the container (its /dev/ptmx, after pivot_root or
 * setns) so that it belongs to the container's own devpts and `tty` inside names it. The
 * slave is sized and given to the process's user; the master stays open for the runtime,
 * which takes it with pidfd_getfd.
 */
export function openContainerPty(proc: OciProcess): Pty {
  return step('opening the terminal', () => {
    const pty = openPty();
    const size = proc.consoleSize;
    if (size) setWindowSize(pty.master, size.height, size.width);
    chownSync(pty.path, proc.user.uid, proc.user.gid);
    return pty;
  });
}

/**
 * Makes the process's terminal this process's own: the slave becomes stdin, stdout, stderr
 * and the controlling terminal of a new session. Returns the master.
 */
export function openTerminal(proc: OciProcess): number {
  const pty = openContainerPty(proc);
  return step('taking the terminal', () => {
    try {
      setsid();
    } catch (e) {
      if (!isErrno(e, 'EPERM')) throw e; // started detached: already a session leader
    }
    setControllingTerminal(pty.slave);
    for (const fd of [0, 1, 2]) dup2(pty.slave, fd);
    closeSync(pty.slave);
    return pty.master;
  });
}

/**
 * Becomes the process's user and capabilities. Order matters: the bounding set is cut while
 * we still may (CAP_SETPCAP), permitted capabilities are kept across the change of uid, and
 * the sets are written last. Without `capabilities` in the spec the sets are left as they are.
 */
export function setUserAndCapabilities(
  proc: OciProcess,
  seccomp?: OciSeccomp,
  /** The profile compiled by the runtime (precompiledProfile), as base64. */
  compiledSeccomp?: string,
  /** Change the ids of this task alone (raw syscalls): what a vfork child must do. */
  rawIds = false,
): void {
  const caps = proc.capabilities;
  const last = caps ? lastCapability() : 0;
  const mask = (names: string[] | undefined) =>
    step('reading capabilities', () => capabilityMask(names ?? [])) & ((1n << BigInt(last + 1)) - 1n);
  if (caps) {
    const bounding = mask(caps.bounding);
    step('dropping capabilities from the bounding set', () => {
      for (let c = 0; c <= last; c++) if (!(bounding & (1n << BigInt(c)))) dropBoundingCapability(c);
      keepCapabilities(true);
    });
  }
  // The filter goes on while we still hold CAP_SYS_ADMIN (without no_new_privs it needs it);
  // what follows here must be allowed by it, which the default profile does.
  if (seccomp) {
    const program = compiledSeccomp
      ? Buffer.from(compiledSeccomp, 'base64')
      : step('compiling the seccomp profile', () => compileProfile(seccomp));
    step('loading the seccomp filter', () => loadSeccompFilter(program));
  }
  const { user } = proc;
  step('setting the user', () => {
    if (rawIds) return setUserRaw(user.uid, user.gid, user.additionalGids ?? []);
    setgroups(user.additionalGids ?? []);
    setresgid(user.gid, user.gid, user.gid);
    setresuid(user.uid, user.uid, user.uid);
  });
  umask(user.umask ?? 0o022);
  if (caps) {
    step('setting capabilities', () => {
      capset({
        effective: mask(caps.effective),
        permitted: mask(caps.permitted),
        inheritable: mask(caps.inheritable),
      });
      for (const name of caps.ambient ?? []) {
        try {
          raiseAmbientCapability(parseCapability(name));
        } catch (e) {
          // The kernel raises an ambient capability only if it is permitted and inheritable;
          // runc skips the others with a warning, and specs (`runc spec`'s) rely on that.
          if (!isErrno(e, 'EPERM')) throw e;
        }
      }
      keepCapabilities(false);
    });
  }
}

/**
 * The program gets stdin, stdout and stderr only: whatever else the runtime's caller left open
 * (without close-on-exec) is closed at exec, as runc does.
 */
export function closeInheritedFds(preserveFds = 0): void {
  cloexecFrom(3 + preserveFds);
}

/**
 * Replaces this process with the program, keeping only fds 0-2 (Node marks them close-on-exec)
 * and the `preserveFds` after them.
 */
export function becomeProgram(
  file: string,
  args: readonly string[],
  env: readonly string[],
  preserveFds = 0,
): never {
  closeInheritedFds(preserveFds);
  for (let fd = 0; fd < 3 + preserveFds; fd++) clearCloexec(fd);
  // Not Node's ignored SIGPIPE and SIGXFSZ: the program starts as under runc.
  defaultSignalActions();
  try {
    return execve(file, args, env);
  } catch (e) {
    throw new ExecError(`exec: "${args[0]}": ${(e as Error).message}`, 126);
  }
}
