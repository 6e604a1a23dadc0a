import type { StdioOptions } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { type Pid1Process, spawnPid1 } from './spawn.js';

export interface StartPid1Options {
  /** Run corral's init as PID 1 with the program as its child (Docker's --init). */
  init?: boolean;
  /** The program's environment as `K=V` strings (default: this process's). */
  env?: string[];
  cwd?: string;
  stdio?: StdioOptions;
}

const entry = fileURLToPath(new URL('./pid1-entry.js', import.meta.url));

/**
 * Starts `argv` as PID 1 of a new PID namespace with its own mount namespace and its own
 * /proc, so `ps` inside shows only the namespace's processes. With `init`, corral's init is
 * PID 1 and reaps orphans and forwards signals to the program.
 */
export function startPid1(argv: readonly string[], options: StartPid1Options = {}): Pid1Process {
  if (argv.length === 0) throw new TypeError('startPid1: argv is empty');
  const env = options.env ?? Object.entries(process.env).map(([k, v]) => `${k}=${v}`);
  const config = { argv, env, cwd: options.cwd ?? process.cwd(), init: options.init ?? false };
  return spawnPid1(process.execPath, [entry], {
    env: { CORRAL_PID1: JSON.stringify(config) },
    stdio: options.stdio ?? 'inherit',
  });
}
