// Runs as PID 1 of a new PID namespace (started by startPid1): gives the namespace its own
// mount namespace and /proc, then becomes the program (execve) or its init (superviseChild).
import { CLONE, clearCloexec, execve, MS, mount, unshare, WAIT, waitpid } from '@corral/sys';
import { ExecError, pathOf, resolveExecutable } from './exec.js';
import { superviseChild } from './supervise.js';

interface Pid1Config {
  argv: string[];
  env: string[];
  cwd: string;
  init: boolean;
}

const config = JSON.parse(process.env.CORRAL_PID1 ?? '') as Pid1Config;
try {
  // Only this thread moves to the new mount namespace: from here on, synchronous calls only.
  unshare(CLONE.NEWNS);
  mount(null, '/', null, MS.REC | MS.PRIVATE);
  mount('proc', '/proc', 'proc', MS.NOSUID | MS.NODEV | MS.NOEXEC);
  process.chdir(config.cwd);
  const file = resolveExecutable(config.argv[0], pathOf(config.env));
  if (config.init) {
    superviseChild(
      file,
      config.argv,
      Object.fromEntries(config.env.map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)])),
      config.cwd,
      (pid) => waitpid(pid, WAIT.NOHANG),
    );
  } else {
    for (const fd of [0, 1, 2]) clearCloexec(fd);
    execve(file, config.argv, config.env);
  }
} catch (e) {
  process.stderr.write(`corral: ${(e as Error).message}\n`);
  process.exit(e instanceof ExecError ? e.exitCode : 125);
}
