// main.ts imports this module first, so it runs before the rest of the CLI loads: for an
// attached `corral run`, the container's init is started now and its Node start-up overlaps
// the CLI's own (loading the engine, resolving the image, mounting the root).

import { type Pid1Process, spawnInit } from '@corral/engine/init-ahead';
import { parseArgs } from './args.js';
import { createFlags } from './commands/run-flags.js';

function attachedRun(argv: string[]): boolean {
  let i = 0;
  while (argv[i]?.startsWith('--root')) i += argv[i].includes('=') ? 1 : 2;
  if (argv[i] !== 'run') return false;
  try {
    const { flags } = parseArgs(argv.slice(i + 1), createFlags, true);
    // A terminal (-t) needs an init started on the pty, not one started now.
    // -a: the program gets only some of our streams, not all three as an init started now.
    return flags.detach !== true && flags.tty !== true && flags.attach === undefined;
  } catch {
    return false; // the command itself will report the error
  }
}

let parked: Pid1Process | null = attachedRun(process.argv.slice(2)) ? spawnInit({ stdio: 'inherit' }) : null;

/** The init started ahead for this run, once; null when there is none or it was taken. */
export function takeParkedInit(): Pid1Process | undefined {
  const p = parked ?? undefined;
  parked = null;
  return p;
}

/** Ends the init started ahead if nobody took it (the run failed before it). */
export function releaseParkedInit(): void {
  takeParkedInit()?.kill('SIGKILL');
}
