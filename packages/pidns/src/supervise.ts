// A minimal init, as Docker's --init (tini) is: start the program, forward signals, reap.
// This module imports nothing but Node's own modules on purpose: a container's init runs it
// as the source of `node --input-type=module -e`, from a node binary the container does not
// have on its filesystem, where no package can be resolved (see runSupervisor).
import { spawn } from 'node:child_process';
import { closeSync, readdirSync, readFileSync, writeSync } from 'node:fs';
import { constants } from 'node:os';

/** Signals that an init passes on to its child, as Docker's --init (tini) does. */
export const FORWARDED_SIGNALS = [
  'SIGTERM',
  'SIGINT',
  'SIGHUP',
  'SIGQUIT',
  'SIGUSR1',
  'SIGUSR2',
  'SIGWINCH',
] as const;

/** Reaps one zombie child without blocking (waitpid(pid, WNOHANG)). */
export type ReapZombie = (pid: number) => void;

/** PIDs of this process's zombie children other than `keep` (Node reaps that one itself). */
function zombieChildren(keep: number): number[] {
  const me = String(process.pid);
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === keep) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (f[0] === 'Z' && f[1] === me) out.push(Number(entry));
    } catch {
      // gone
    }
  }
  return out;
}

/**
 * Makes this process a minimal init: starts the program as its child, forwards
 * SIGTERM/SIGINT/SIGHUP/SIGQUIT/SIGUSR1/SIGUSR2/SIGWINCH to it, reaps orphaned zombies that
 * the kernel reparents here (with `reapZombie`), and exits with the child's code (128 + S
 * when killed by S). Meant for PID 1 of a namespace, where the kernel then ends everything left.
 */
export function superviseChild(
  file: string,
  argv: readonly string[],
  env: Record<string, string>,
  cwd: string,
  reapZombie: ReapZombie,
): void {
  const child = spawn(file, argv.slice(1), { argv0: argv[0], env, cwd, stdio: 'inherit' });
  const reap = () => {
    for (const pid of zombieChildren(child.pid ?? -1)) {
      try {
        reapZombie(pid);
      } catch {
        // already reaped
      }
    }
  };
  for (const sig of FORWARDED_SIGNALS) process.on(sig, () => child.kill(sig));
  process.on('SIGCHLD', reap);
  child.on('error', (e) => {
    process.stderr.write(`corral-init: ${e.message}\n`);
    process.exit(127);
  });
  child.on('exit', (code, signal) => {
    reap();
    const signo = signal ? (constants.signals as Record<string, number>)[signal] : constants.signals.SIGKILL;
    process.exit(code ?? 128 + signo);
  });
}

/** What a container's init hands the supervisor it becomes (as one JSON argument). */
export interface SupervisorConfig {
  file: string;
  argv: string[];
  env: Record<string, string>;
  cwd: string;
  /** Path of koffi's native module: the supervisor's only way to waitpid and prctl. */
  koffi: string;
  /** Inherited fds that lead to the host (views of its binaries and libraries): closed first. */
  closeFds: number[];
  /** An fd to write one byte to and close once nothing of the host is left here. */
  readyFd: number;
}

/** The argument that marks a `node -e` run of this module as a supervisor. */
export const SUPERVISOR_FLAG = '--corral-supervisor';

interface Libc {
  func(signature: string): (...args: unknown[]) => number;
}

/**
 * The supervisor's main: drops what the process inherited from the host, says so on
 * `readyFd` (the container's `start` waits for that byte), then supervises the program.
 */
export function runSupervisor(config: SupervisorConfig): void {
  const native = { exports: {} as { load(name: string): Libc } };
  process.dlopen(native, config.koffi);
  const libc = native.exports.load('libc.so.6');
  const prctl = libc.func('int prctl(int, unsigned long, unsigned long, unsigned long, unsigned long)');
  const waitpid = libc.func('int waitpid(int, _Out_ int *, int)');
  prctl(4 /* PR_SET_DUMPABLE */, 0, 0, 0, 0);
  for (const fd of config.closeFds) closeSync(fd);
  process.title = 'corral-init';
  writeSync(config.readyFd, '0');
  closeSync(config.readyFd);
  superviseChild(config.file, config.argv, config.env, config.cwd, (pid) => {
    waitpid(pid, [0], 1 /* WNOHANG */);
  });
}

if (process.argv[1] === SUPERVISOR_FLAG) {
  try {
    runSupervisor(JSON.parse(process.argv[2] ?? '') as SupervisorConfig);
  } catch (e) {
    process.stderr.write(`corral-init: ${(e as Error).message}\n`);
    process.exit(125);
  }
}
