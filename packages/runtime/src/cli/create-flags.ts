// The flags of create and run, and the hand-over of an init started ahead (early.ts) to the
// command (create.ts): two bundles of their own, so the hand-over goes through globalThis.
import type { Pid1Process } from '@corral/pidns';
import type { FlagSpecs } from './args.js';

export const CREATE_FLAGS: FlagSpecs = {
  bundle: { type: 'string', alias: ['b'] },
  'pid-file': { type: 'string' },
  'console-socket': { type: 'string' },
  'no-pivot': { type: 'bool' },
  'no-new-keyring': { type: 'bool' },
  'preserve-fds': { type: 'int' },
};

export const RUN_FLAGS: FlagSpecs = {
  ...CREATE_FLAGS,
  detach: { type: 'bool', alias: ['d'] },
  keep: { type: 'bool' },
  'no-subreaper': { type: 'bool' },
};

/** An init started ahead, with what it was started for. */
export interface EarlyInit {
  init: Pid1Process;
  preserveFds: number;
  pidNamespace: string | undefined;
}

const KEY = Symbol.for('corral-runtime.early-init');

export function putEarlyInit(early: EarlyInit): void {
  (globalThis as Record<symbol, unknown>)[KEY] = early;
}

/** The init started ahead, once (undefined when there is none). */
export function takeEarlyInit(): EarlyInit | undefined {
  const g = globalThis as Record<symbol, EarlyInit | undefined>;
  const early = g[KEY];
  g[KEY] = undefined;
  return early;
}
