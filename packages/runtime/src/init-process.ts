import type { StdioOptions } from 'node:child_process';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { inPidNamespaceAt, Pid1Process, spawnPid1 } from '@corral/pidns';
import { processScript } from './bundled.js';
import { sealedNode } from './sealed.js';

/** One of stdin, stdout, stderr: inherited, /dev/null, a pipe to the creator, or an open fd. */
export type StdioPipe = 'inherit' | 'ignore' | 'pipe';
export type InitStdio = StdioPipe | [StdioPipe | number, StdioPipe | number, StdioPipe | number];

const initScript = processScript('init', import.meta.url);

/**
 * Starts a container init: PID 1 of a new PID namespace, which loads and then waits on its
 * sync socket (fd 3) for a spec. Runtime.create starts one itself; a caller can also start
 * one ahead of need (`create(..., { init })`) so that Node's start-up runs while it does other
 * work. An init never handed a spec ends when its creator does (the socket closes).
 * This module loads little on purpose: callers import it first.
 */
export function spawnInit(options: SpawnInitOptions = {}): Pid1Process {
  const stdio = options.stdio ?? 'inherit';
  const base = Array.isArray(stdio) ? stdio : [stdio, stdio, stdio];
  // Fds passed on to the program keep their numbers: the sync socket comes after them.
  const preserve = options.preserveFds ?? 0;
  const extra = Array.from({ length: preserve }, (_, i) => 3 + i);
  const args = ['--v8-pool-size=1', initScript];
  const spawnOptions = {
    stdio: [...(base as StdioOptions[]), ...extra, options.syncFd ?? 'pipe'] as StdioOptions,
    detached: options.detached ?? false,
    // Few threads: each one is a task in the container's PID namespace and pids cgroup.
    env: { UV_THREADPOOL_SIZE: '1', CORRAL_SYNC_FD: String(3 + preserve) },
  };
  const node = sealedNode(options.node);
  if (options.pidNamespace !== undefined) {
    const path = options.pidNamespace;
    return new Pid1Process(inPidNamespaceAt(path, () => spawn(node, args, spawnOptions)));
  }
  return spawnPid1(node, args, spawnOptions);
}

/** read(2)'s number, as /proc/PID/syscall shows it. */
const NR_READ: Record<string, number> = { x64: 0, arm64: 63 };

/**
 * Whether an init started ahead has loaded and waits for its spec: its main thread blocked in
 * read(2) on the sync socket (/proc/PID/syscall, readable by its parent or root). False while
 * it loads, once it is gone, and on an architecture this does not know. A pool moves a parked
 * init into a cgroup only then, so that the container's is not charged for Node's start-up
 * (3-4 MiB here, against a 6 MiB minimum limit).
 */
export function initWaitsForSpec(pid: number, syncFd = 3): boolean {
  const nr = NR_READ[process.arch];
  if (nr === undefined) return false;
  try {
    return readFileSync(`/proc/${pid}/syscall`, 'utf8').startsWith(`${nr} 0x${syncFd.toString(16)} `);
  } catch {
    return false;
  }
}

export interface SpawnInitOptions {
  stdio?: InitStdio;
  /** Start the init in a session of its own. */
  detached?: boolean;
  node?: string;
  /** Fds 3 .. 3+N-1 of this process that the container's program gets as the same numbers. */
  preserveFds?: number;
  /**
   * An existing PID namespace (a pod's) for the init to join as one of its processes, instead
   * of being PID 1 of a new one.
   */
  pidNamespace?: string;
  /**
   * An fd of this process to give the init as its sync socket instead of a new pipe: one end
   * of a socket whose other end another process holds (a keeper starts the init, the engine
   * that spawned the keeper creates the container through it). syncPipeOf is then null.
   */
  syncFd?: number;
}

/** The init's sync socket: the last of its stdio. */
export function syncPipeOf(init: Pid1Process): import('node:stream').Duplex {
  return init.child.stdio[init.child.stdio.length - 1] as unknown as import('node:stream').Duplex;
}
