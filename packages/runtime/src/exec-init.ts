// A process started in a running container (Runtime.exec, `corral exec`). It is spawned into
// the container's PID namespace and cgroup by the runtime, then here joins the container's
// mount, UTS and IPC namespaces (and network and cgroup ones where the container has its
// own), sets up the terminal and user, and becomes the program.
// setns moves only this thread: everything here is synchronous.

import { ExecError, pathOf, resolveExecutable } from '@corral/pidns';
import { CLONE, pidfdOpen, setns, unshare } from '@corral/sys';
import { becomeProgram, openTerminal, SetupError, setUserAndCapabilities, step } from './process-setup.js';
import type { OciSeccomp } from './seccomp.js';
import type { OciProcess } from './spec.js';
import { readLineSync, writeLineSync } from './sync.js';

const SYNC_FD = 3;

interface ExecConfig {
  process: OciProcess;
  /** The container's seccomp profile: an exec'd program is held to it too. */
  seccomp?: OciSeccomp;
  /** setns flags of the namespaces the container does not share with the runtime. */
  namespaces: number;
}

function main(): void {
  const config = JSON.parse(readLineSync(SYNC_FD)) as ExecConfig;
  const proc = config.process;
  let terminalFd: number | null = null;
  let file: string;
  try {
    // We are in the container's PID namespace: its init is PID 1 here.
    const init = step('opening the container init', () => pidfdOpen(1));
    // Joining a mount namespace needs a filesystem context (root, cwd) of our own.
    step('unshare(CLONE_FS)', () => unshare(CLONE.FS));
    step('joining the container namespaces', () => setns(init, config.namespaces));
    step(`changing to the working directory ${proc.cwd}`, () => process.chdir(proc.cwd));
    const env = proc.env ?? [];
    file = resolveExecutable(proc.args[0], pathOf(env));
    if (proc.terminal) terminalFd = openTerminal(proc);
    setUserAndCapabilities(proc, config.seccomp);
  } catch (e) {
    const exitCode = e instanceof ExecError || e instanceof SetupError ? e.exitCode : 125;
    writeLineSync(SYNC_FD, { type: 'error', message: (e as Error).message, exitCode });
    process.exit(exitCode);
  }
  writeLineSync(SYNC_FD, { type: 'ready', terminalFd });
  // The runtime answers once it has taken the terminal master.
  readLineSync(SYNC_FD);
  becomeProgram(file, proc.args, proc.env ?? []);
}

try {
  main();
} catch (e) {
  process.stderr.write(`corral exec: ${(e as Error).message}\n`);
  process.exit(e instanceof ExecError ? e.exitCode : 125);
}
