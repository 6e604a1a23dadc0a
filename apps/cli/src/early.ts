// main.ts imports this module first, so it runs before the rest of the CLI loads: for an
// attached `corral run`, the container's keeper is started now (it starts the init at once),
// and their Node start-ups overlap the CLI's own (loading the engine, resolving the image,
// mounting the root). The keeper outlives this process if it is killed: see keeper.ts.

import { KeeperClient } from '@corral/engine/init-ahead';
import { parseArgs } from './args.js';
import { createFlags } from './commands/run-flags.js';

/** The program's stdin for an attached run that can have its keeper started now, or null. */
function attachedRun(argv: string[]): 0 | 'ignore' | null {
  let i = 0;
  while (argv[i]?.startsWith('--root')) i += argv[i].includes('=') ? 1 : 2;
  if (argv[i] !== 'run') return null;
  try {
    const { flags } = parseArgs(argv.slice(i + 1), createFlags, true);
    // A terminal (-t) needs an init started on the pty, not one started now.
    // -a: the program gets only some of our streams, not all three as an init started now.
    if (flags.detach === true || flags.tty === true || flags.attach !== undefined) return null;
    return flags.interactive === true ? 0 : 'ignore';
  } catch {
    return null; // the command itself will report the error
  }
}

const stdin = attachedRun(process.argv.slice(2));
let parked: KeeperClient | null = stdin === null ? null : new KeeperClient('attached', [stdin, 1, 2]);

/** The keeper started ahead for this run, once; undefined when there is none or it was taken. */
export function takeParkedKeeper(): KeeperClient | undefined {
  const p = parked ?? undefined;
  parked = null;
  return p;
}

/** Ends the keeper started ahead if nobody took it (the run failed before it): its init goes too. */
export function releaseParkedInit(): void {
  takeParkedKeeper()?.kill();
}
