import type { CniResult } from './cni/invoke.js';
import type { Attachment } from './types.js';

/**
 * A backend that plugs a namespace into a network and takes it out again. The CNI backend
 * (cni/driver.ts) is the one corral ships; another (netavark, a userspace slirp) is a class
 * with these three methods.
 */
export interface NetworkDriver {
  readonly name: string;
  /** Brings `lo` up in a fresh namespace (the whole of `--network none`). */
  loopback(containerId: string, netns: string, command: 'ADD' | 'DEL'): Promise<void>;
  /** Runs the attachment's configuration; returns the result to keep for its teardown. */
  add(att: Attachment): Promise<CniResult>;
  /** Undoes add, also when add failed half way or the namespace is already gone. Idempotent. */
  del(att: Attachment): Promise<void>;
}
