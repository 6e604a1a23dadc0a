// A container's init: PID 1 of the container's new PID namespace, started by Runtime.create.
// It reads the spec from the sync socket (fd 3), builds the container's namespaces and root
// filesystem, says "ready", waits until `start` opens the exec fifo, then becomes the user's
// program (execve) or, with the init annotation, its supervisor.
// Namespaces move only this thread: after unshare everything here is synchronous.
import { closeSync, openSync, writeFileSync } from 'node:fs';
import { ExecError } from '@corral/pidns';
import { dup2, O, PR, prctl, setCloexec } from '@corral/sys';
import { beforeProgram } from './init-lifecycle.js';
import { type InitConfig, type Prepared, setup } from './init-setup.js';
import { becomeProgram, closeInheritedFds, envObject, SetupError } from './process-setup.js';
import { execSupervisor } from './supervisor-exec.js';
import { readLineSync, SyncClosedError, writeLineSync } from './sync.js';

// fd 3 unless the runtime passes fds to the program there (--preserve-fds): then after them.
const SYNC_FD = Number(process.env.CORRAL_SYNC_FD || 3);

function main(): void {
  setCloexec(SYNC_FD);
  let first: string;
  try {
    first = readLineSync(SYNC_FD);
  } catch (e) {
    // An init started ahead that no container came for (a refused run, a pool shutting down):
    // nothing went wrong that its caller's user should read about.
    if (e instanceof SyncClosedError) process.exit(125);
    throw e;
  }
  const config = JSON.parse(first) as InitConfig;
  if (config.nullStdin) {
    const devnull = openSync('/dev/null', 'r');
    dup2(devnull, 0);
    closeSync(devnull);
  }
  let prepared: Prepared;
  try {
    prepared = setup(config, SYNC_FD);
  } catch (e) {
    const exitCode = e instanceof ExecError || e instanceof SetupError ? e.exitCode : 125;
    writeLineSync(SYNC_FD, { type: 'error', message: (e as Error).message, exitCode });
    process.exit(exitCode);
  }
  writeLineSync(SYNC_FD, { type: 'ready', terminalFd: prepared.terminalFd });
  // Blocks until `start` opens the fifo for reading.
  const fifo = openSync(`/proc/self/fd/${prepared.fifoFd}`, O.WRONLY | O.CLOEXEC);
  const { spec } = config;
  const env = spec.process.env ?? [];
  beforeProgram(config);
  if (prepared.views) {
    // The supervisor writes the fifo's byte once it has let go of the host: until then
    // `start` does not return, so nothing of the container runs beside it.
    closeInheritedFds();
    execSupervisor(prepared.views, {
      file: prepared.file,
      argv: spec.process.args,
      env: envObject(env),
      cwd: spec.process.cwd,
      readyFd: fifo,
    });
  }
  writeFileSync(fifo, '0');
  becomeProgram(prepared.file, spec.process.args, env, config.preserveFds);
}

// Nothing in the container may ptrace us or open our /proc files while we hold the host's
// root: non-dumpable from here on, and never made dumpable again.
prctl(PR.SET_DUMPABLE, 0);
try {
  main();
} catch (e) {
  process.stderr.write(`corral init: ${(e as Error).message}\n`);
  process.exit(e instanceof ExecError ? e.exitCode : 125);
}
