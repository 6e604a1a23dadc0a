import { accessSync, constants, statSync } from 'node:fs';
import { join } from 'node:path';

/** Why a program cannot be started, with Docker's exit code for it (126 or 127). */
export class ExecError extends Error {
  readonly exitCode: 126 | 127;
  constructor(message: string, exitCode: 126 | 127) {
    super(message);
    this.name = 'ExecError';
    this.exitCode = exitCode;
  }
}

/**
 * Finds the file that execve would run for `command`, searching `PATH` when it has no slash.
 * `root` prefixes every path looked at (a rootfs seen from outside); the result is the path
 * inside it. Throws ExecError: 127 when nothing is found, 126 when it is not executable.
 */
export function resolveExecutable(command: string, path: string, root = '/'): string {
  if (command === '') throw new ExecError('exec: no command given', 127);
  const candidates = command.includes('/')
    ? [command]
    : path
        .split(':')
        .filter(Boolean)
        .map((d) => join(d, command));
  let denied: string | null = null;
  for (const candidate of candidates) {
    const seen = join(root, candidate);
    let st: ReturnType<typeof statSync>;
    try {
      st = statSync(seen);
    } catch {
      continue;
    }
    if (st.isDirectory()) {
      denied ??= `exec: "${command}": is a directory`;
      continue;
    }
    try {
      accessSync(seen, constants.X_OK);
      return candidate;
    } catch {
      denied ??= `exec: "${command}": permission denied`;
    }
  }
  if (denied) throw new ExecError(denied, 126);
  if (command.includes('/')) throw new ExecError(`exec: "${command}": no such file or directory`, 127);
  throw new ExecError(`exec: "${command}": executable file not found in $PATH`, 127);
}

/** The PATH of an environment list (`K=V` strings), or the usual default. */
export function pathOf(env: readonly string[]): string {
  const entry = env.find((e) => e.startsWith('PATH='));
  return entry ? entry.slice(5) : '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
}
