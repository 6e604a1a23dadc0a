// A fast keeper's container (keeper.ts, spawned with `fast`): no Node init. When the front-end
// has written the bundle, the keeper makes and starts the container at once in a vfork child
// of its own (the runtime's runFast, as `corral-runtime run` does): one Node start per
// container instead of two, and no Node thread ever in its PID namespace or cgroup. The
// program is the keeper's child, as an init would be, and dies with it (dieWithParent).
// Bundled on its own: the keeper loads it while it waits for its front-end.
import { closeSync, openSync } from 'node:fs';
import { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { openCgroup, readProcCgroups } from '@corral/cgroups';
import { runFast } from '@corral/runtime';
import { parseSignal, pidfdSendSignal, preloadNative, procStartTime, rawPipe } from '@corral/sys';

/** The program as the keeper keeps it (as it keeps a Node init). */
export interface FastProgram {
  pid: number;
  startTime: number;
  pidfd: number;
  kill(signal: NodeJS.Signals | number): void;
  wait(): Promise<number>;
}

/** Output pipes for a detached program: the keeper reads `stdout` and `stderr` into the log. */
export interface OutputPipes {
  stdout: Readable;
  stderr: Readable;
  /** The program's 0, 1, 2: /dev/null and the pipes' write ends (closed here once it runs). */
  fds: [number, number, number];
}

function pipeOrThrow(): { read: number; write: number } {
  const p = rawPipe(64 * 1024);
  if (typeof p === 'number') throw new Error(`pipe2: errno ${-p}`);
  return p;
}

/**
 * Loads the native calls a run makes, and runs once the code that finds its cgroup (reads
 * only: nothing is made), while the keeper waits for its front-end: the run then pays neither
 * (about 10-20 and 2-4 ms here).
 */
export function warm(): void {
  preloadNative();
  try {
    openCgroup({ path: `corral-warm-${process.pid}`, own: readProcCgroups('self') }).exists();
  } catch {
    // no cgroupfs: the run says so if it needs one
  }
}

export function outputPipes(): OutputPipes {
  const out = pipeOrThrow();
  const err = pipeOrThrow();
  const devnull = openSync('/dev/null', 'r');
  const reader = (fd: number) => new Socket({ fd, readable: true, writable: false });
  return { stdout: reader(out.read), stderr: reader(err.read), fds: [devnull, out.write, err.write] };
}

/**
 * Creates and starts the container of `bundle` (state in the runtime's `root`) with `stdio`
 * as the program's 0, 1, 2 (this process's own when not given); throws with runc's exit
 * code as `exitCode` when it cannot.
 */
export async function runContainer(
  root: string,
  id: string,
  bundle: string,
  stdio?: [number, number, number],
  /** What the front-end has ready: FastRunOptions' seccompProgram and parkedCgroup. */
  ready: { seccompProgram?: string; parkedCgroup?: string } = {},
): Promise<FastProgram> {
  try {
    const r = await runFast(root, id, bundle, { stdio, dieWithParent: true, ...ready });
    // Before the wait below may reap it (a zombie still has its start time).
    const startTime = procStartTime(r.pid) ?? 0;
    let code: number | null = null;
    const exited = r.exited().then((c) => (code = c));
    return {
      pid: r.pid,
      startTime,
      pidfd: r.pidfd,
      kill(signal) {
        if (code !== null) return; // reaped: its pidfd is closed
        try {
          pidfdSendSignal(r.pidfd, typeof signal === 'number' ? signal : parseSignal(signal));
        } catch {
          // ended meanwhile
        }
      },
      wait: () => exited,
    };
  } finally {
    // The program has its copies (or never will).
    if (stdio) for (const fd of new Set(stdio)) if (fd > 2) closeSync(fd);
  }
}
