import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { parseSignal, WAIT, waitpid } from '@corral/sys';

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
 * the kernel reparents here, and exits with the child's code (128 + S when killed by S).
 * Meant for PID 1 of a namespace, where the kernel then ends everything left.
 */
export function superviseChild(
  file: string,
  argv: readonly string[],
  env: Record<string, string>,
  cwd = '/',
): void {
  const child = spawn(file, argv.slice(1), { argv0: argv[0], env, cwd, stdio: 'inherit' });
  const reap = () => {
    for (const pid of zombieChildren(child.pid ?? -1)) {
      try {
        waitpid(pid, WAIT.NOHANG);
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
    process.exit(code ?? 128 + parseSignal(signal ?? 'KILL'));
  });
}
