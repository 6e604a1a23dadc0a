import type { StdioOptions } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { type Pid1Process, spawnPid1 } from '@corral/pidns';
import { sealedNode } from './sealed.js';

/** One of stdin, stdout, stderr: inherited, /dev/null, a pipe to the creator, or an open fd. */
export type StdioPipe = 'inherit' | 'ignore' | 'pipe';
export type InitStdio = StdioPipe | [StdioPipe | number, StdioPipe | number, StdioPipe | number];

const initScript = fileURLToPath(new URL('./init.js', import.meta.url));

/**
 * Starts a container init: PID 1 of a new PID namespace, which loads and then waits on its
 * sync socket (fd 3) for a spec. Runtime.create starts one itself; a caller can also start
 * one ahead of need (`create(..., { init })`) so that Node's start-up runs while it does other
 * work. An init never handed a spec ends when its creator does (the socket closes).
 * This module loads little on purpose: callers import it first.
 */
export function spawnInit(
  options: { stdio?: InitStdio; detached?: boolean; node?: string } = {},
): Pid1Process {
  const stdio = options.stdio ?? 'inherit';
  const base = Array.isArray(stdio) ? stdio : [stdio, stdio, stdio];
  // Few threads: each one is a task in the container's PID namespace and pids cgroup.
  return spawnPid1(sealedNode(options.node), ['--v8-pool-size=1', initScript], {
    stdio: [...(base as StdioOptions[]), 'pipe'] as StdioOptions,
    detached: options.detached ?? false,
    env: { UV_THREADPOOL_SIZE: '1' },
  });
}
