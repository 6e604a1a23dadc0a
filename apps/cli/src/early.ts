// The CLI's first code: for `corral run` it spawns the container's keeper (which starts the
// init at once) before anything else loads, so that the keeper's and the init's Node
// start-ups overlap the CLI's own (loading the engine, resolving the image, mounting the
// root). The build bundles this module alone (dist/bundle/early.cjs), and bin/corral.cjs runs
// it before the CLI's bundle; main.ts imports it first too (from dist, or to find it done).
// It loads node:child_process and the run flags, nothing else: parked.ts hands the process to
// the engine's KeeperClient later, or ends it. The keeper outlives this process if it is
// killed: see the engine's keeper.ts.
import type { ChildProcess } from 'node:child_process';
import type { KeeperMode } from '@corral/engine/init-ahead';
import { type KeeperStdio, spawnKeeper } from '@corral/engine/keeper-spawn';
import { parseArgs } from './args.js';
import { createFlags } from './commands/run-flags.js';

/**
 * A keeper spawned ahead: the process, and the mode and stdio it was spawned with. `fast`: it
 * starts no init, but makes the container itself once the engine has written its bundle
 * (KeeperClient.run), unless the engine finds the fast path cannot and asks for an init.
 */
export interface KeeperAhead {
  child: ChildProcess;
  mode: KeeperMode;
  stdio: KeeperStdio;
  fast: boolean;
}

/** How the keeper of a `run` or `start` in `argv` is spawned, or null when none can be started now. */
export function aheadFor(argv: readonly string[], env = process.env): Omit<KeeperAhead, 'child'> | null {
  // The runtime's switch for its fast path: a keeper that starts its init at once then.
  const fast = env.CORRAL_RUNTIME_FAST !== '0';
  // A remote engine (corrald) starts its own.
  if (env.CORRAL_HOST) return null;
  let i = 0;
  for (;;) {
    if (argv[i]?.startsWith('--root')) i += argv[i].includes('=') ? 1 : 2;
    else if (/^--(iptables|ip-forward|ip-masq)(=|$)/.test(argv[i] ?? ''))
      i += 1; // network switches
    else break;
  }
  // `start CONTAINER`: a detached keeper (the record is not read here: for a container with a
  // terminal the engine ends it and starts one of its own).
  if (argv[i] === 'start')
    return argv.length === i + 2 && !argv[i + 1].startsWith('-')
      ? { mode: 'detached', stdio: ['ignore', 'ignore', 'ignore'], fast }
      : null;
  if (argv[i] !== 'run') return null;
  try {
    const { flags, positionals } = parseArgs(argv.slice(i + 1), createFlags, true);
    if (!positionals.length && flags.rootfs === undefined) return null; // a usage error follows
    // Detached (`run -d`): the keeper logs the output. A terminal: the init opens the pty.
    if (flags.tty === true) return { mode: 'tty', stdio: ['ignore', 'ignore', 'ignore'], fast: false };
    // Fast when nothing asked for needs an init: -i detached (a stdin pipe kept), --init.
    const plain = fast && flags.init !== true;
    if (flags.detach === true)
      return {
        mode: 'detached',
        stdio: ['ignore', 'ignore', 'ignore'],
        fast: plain && flags.interactive !== true,
      };
    // -a: the program gets only some of our streams, not all three as spawned now.
    if (flags.attach !== undefined) return null;
    return { mode: 'attached', stdio: [flags.interactive === true ? 0 : 'ignore', 1, 2], fast: plain };
  } catch {
    return null; // the command itself will report the error
  }
}

// One spawn per process, also when this module is evaluated twice (once in the early bundle,
// once in the CLI's): the keeper waits here until parked.ts takes it.
const KEY = Symbol.for('corral.cli.keeperAhead');
const slot = globalThis as { [KEY]?: KeeperAhead | null };
if (!(KEY in slot)) {
  const how = aheadFor(process.argv.slice(2));
  slot[KEY] = how && { ...how, child: spawnKeeper(how.mode, how.stdio, undefined, how.fast) };
}

/** The keeper spawned ahead, once; null when there is none or it was taken. */
export function takeKeeperAhead(): KeeperAhead | null {
  const k = slot[KEY] ?? null;
  slot[KEY] = null;
  return k;
}
