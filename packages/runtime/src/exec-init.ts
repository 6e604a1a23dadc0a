// The helper behind Runtime.exec (`corral exec`). It stays in the host's PID namespace, where
// no process of the container can see it: Node's helper threads keep the host's root, and a
// task visible inside a container must never have one (CVE-2016-9962 class). Its main thread
// alone enters the container: the container's mount, UTS, IPC, network and cgroup namespaces
// and, for its children, the PID namespace; then the process's user, capabilities, seccomp
// filter and no_new_privs. posix_spawn from that thread then starts the program, which is
// born inside with all of it. The helper waits for the program and exits with its status.
// setns moves only this thread: everything here is synchronous.

import { ExecError, pathOf, resolveExecutable } from '@corral/pidns';
import {
  CLONE,
  clearCloexec,
  close,
  isErrno,
  PR,
  type Pty,
  pidfdOpen,
  prctl,
  procStartTime,
  setCloexec,
  setns,
  spawnProgram,
  unshare,
  waitpid,
} from '@corral/sys';
import {
  closeInheritedFds,
  openContainerPty,
  SetupError,
  setRlimits,
  setUserAndCapabilities,
  step,
} from './process-setup.js';
import type { OciSeccomp } from './seccomp.js';
import type { OciProcess } from './spec.js';
import { readLineSync, writeLineSync } from './sync.js';

// fd 3 unless fds for the program come first (--preserve-fds).
const SYNC_FD = Number(process.env.CORRAL_SYNC_FD || 3);

export interface ExecConfig {
  process: OciProcess;
  /** The container's seccomp profile: an exec'd program is held to it too. */
  seccomp?: OciSeccomp;
  /** setns flags of the namespaces to join (the PID namespace included). */
  namespaces: number;
  /** The container's init, named for good by its PID and start time. */
  init: { pid: number; startTime: number };
  /** Leave the program once it runs (`exec -d`): it is reparented to the caller's subreaper. */
  detach?: boolean;
  /** Fds from 3 on that the program keeps (--preserve-fds). */
  preserveFds?: number;
}

/** Enters the container on this thread and becomes the process's user; returns the program's path. */
function enter(config: ExecConfig): { file: string; pty: Pty | null } {
  const proc = config.process;
  const init = step('opening the container init', () => pidfdOpen(config.init.pid));
  try {
    // The pidfd was opened after the runtime's check: make sure it still names the init.
    if (procStartTime(config.init.pid) !== config.init.startTime)
      throw new SetupError('the container is not running', 1);
    // Joining a mount namespace needs a filesystem context (root, cwd) of our own.
    step('unshare(CLONE_FS)', () => unshare(CLONE.FS));
    step('joining the container namespaces', () => setns(init, config.namespaces));
  } finally {
    close(init);
  }
  step(`changing to the working directory ${proc.cwd}`, () => process.chdir(proc.cwd));
  const file = resolveExecutable(proc.args[0], pathOf(proc.env ?? []));
  const pty = proc.terminal ? openContainerPty(proc) : null;
  setRlimits(proc.rlimits);
  setUserAndCapabilities(proc, config.seccomp);
  if (proc.noNewPrivileges) step('no_new_privs', () => prctl(PR.SET_NO_NEW_PRIVS, 1));
  return { file, pty };
}

/** Waits for the program (nothing else is left to do here) and exits as it did. */
function mirrorExit(pid: number): never {
  for (;;) {
    try {
      const status = waitpid(pid);
      if (status) process.exit(status.code);
    } catch (e) {
      if (!isErrno(e, 'EINTR')) throw e;
    }
  }
}

function main(): void {
  setCloexec(SYNC_FD);
  const config = JSON.parse(readLineSync(SYNC_FD)) as ExecConfig;
  const proc = config.process;
  let entered: { file: string; pty: Pty | null };
  try {
    entered = enter(config);
  } catch (e) {
    const exitCode = e instanceof ExecError || e instanceof SetupError ? e.exitCode : 125;
    writeLineSync(SYNC_FD, { type: 'error', message: (e as Error).message, exitCode });
    process.exit(exitCode);
  }
  const { file, pty } = entered;
  writeLineSync(SYNC_FD, { type: 'ready', terminalFd: pty?.master ?? null });
  // The runtime answers once it has taken the terminal master.
  readLineSync(SYNC_FD);
  // The program gets stdin, stdout and stderr (or the terminal) only; Node made 0-2 close-on-exec.
  const preserve = config.preserveFds ?? 0;
  closeInheritedFds(preserve);
  for (let fd = 0; fd < 3 + preserve; fd++) clearCloexec(fd);
  let pid: number;
  try {
    pid = spawnProgram(file, proc.args, proc.env ?? [], pty ? { terminal: pty.path } : {});
  } catch (e) {
    const message = `exec: "${proc.args[0]}": ${(e as Error).message}`;
    writeLineSync(SYNC_FD, { type: 'error', message, exitCode: 126 });
    process.exit(126);
  }
  if (pty) {
    close(pty.slave);
    close(pty.master);
  }
  writeLineSync(SYNC_FD, { type: 'started', pid });
  // Not reaped before the runtime holds a pidfd on it: the PID must not be reused meanwhile.
  try {
    readLineSync(SYNC_FD);
  } catch {
    // the runtime went away: nobody will signal the program through us
  }
  if (config.detach) process.exit(0);
  mirrorExit(pid);
}

// Non-dumpable from the first line: nothing may ptrace us or open our /proc files.
prctl(PR.SET_DUMPABLE, 0);
try {
  main();
} catch (e) {
  process.stderr.write(`corral exec: ${(e as Error).message}\n`);
  process.exit(e instanceof ExecError ? e.exitCode : 125);
}
