// The keeper that early.ts spawned ahead for this `run`, as the engine's KeeperClient: taken
// by the command that uses it, or ended when the command fails before it does.
import { KeeperClient } from '@corral/engine/init-ahead';
import { takeKeeperAhead } from './early.js';

/** The keeper started ahead for this run, once; undefined when there is none or it was taken. */
export function takeParkedKeeper(): KeeperClient | undefined {
  const k = takeKeeperAhead();
  return k ? new KeeperClient(k.mode, k.stdio, undefined, k.child, k.fast) : undefined;
}

/** Ends the keeper started ahead if nobody took it (the run failed before it): its init goes too. */
export function releaseParkedInit(): void {
  takeParkedKeeper()?.kill();
}
