import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { CLONE, close, parseSignal, pidfdOpen, pidfdSendSignal, setns, unshare } from '@corral/sys';
import { namespaceTree, type ProcessNode } from './tree.js';

// The PID namespace that this process's children normally go to, kept open for good so that
// the main thread can come back to it after each unshare(CLONE_NEWPID).
let hostPidNsFd = -1;

/** Runs `fn` (one synchronous spawn) after `enter` switched pid_for_children; always switches back. */
function withPidNamespace<T>(enter: () => void, fn: () => T): T {
  if (hostPidNsFd < 0) hostPidNsFd = openSync('/proc/thread-self/ns/pid_for_children', 'r');
  enter();
  try {
    return fn();
  } finally {
    setns(hostPidNsFd, CLONE.NEWPID);
  }
}

/**
 * Runs `fn` (which must create exactly one child synchronously, e.g. child_process.spawn)
 * with the main thread's pid_for_children set to a new PID namespace: that child becomes
 * PID 1 of it. The main thread goes back to the old namespace afterwards, so later children
 * stay on the host. Async work in between is not allowed: the switch is per thread.
 */
export function inNewPidNamespace<T>(fn: () => T): T {
  return withPidNamespace(() => unshare(CLONE.NEWPID), fn);
}

/**
 * Runs `fn` (which must create one child synchronously) with the main thread's
 * pid_for_children set to the PID namespace of `pid`: the child joins that namespace (as a
 * process of it, not its PID 1). How a program is started inside a running container.
 */
export function inPidNamespaceOf<T>(pid: number, fn: () => T): T {
  return inPidNamespaceAt(`/proc/${pid}/ns/pid`, fn);
}

/**
 * Runs `fn` (which must create one child synchronously) with the main thread's
 * pid_for_children set to the PID namespace at `path` (a /proc/PID/ns/pid link or a bind
 * mount of one): the child joins it as one of its processes, as a pod's containers do.
 */
export function inPidNamespaceAt<T>(path: string, fn: () => T): T {
  return withPidNamespace(() => {
    const target = openSync(path, 'r');
    try {
      setns(target, CLONE.NEWPID);
    } finally {
      closeSync(target);
    }
  }, fn);
}

/** A process that is PID 1 of its own PID namespace, seen from the host. */
export class Pid1Process {
  readonly child: ChildProcess;
  readonly pid: number;
  /** A pidfd on the process: signals through it can never hit a recycled PID. */
  readonly pidfd: number;
  private readonly exited: Promise<number>;

  constructor(child: ChildProcess) {
    if (child.pid === undefined) throw new Error('the PID 1 process failed to start');
    this.child = child;
    this.pid = child.pid;
    this.pidfd = pidfdOpen(child.pid);
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        closePidfd(this.pidfd);
        // Docker's convention: killed by signal S gives 128 + S.
        resolve(code ?? 128 + parseSignal(signal ?? 'KILL'));
      });
    });
  }

  /** Resolves with the exit code (128 + S when killed by signal S). */
  wait(): Promise<number> {
    return this.exited;
  }

  /**
   * Sends a signal to PID 1. From the host, PID 1 only gets signals it has a handler for,
   * except SIGKILL and SIGSTOP; when PID 1 dies the kernel kills the whole namespace.
   */
  kill(signal: string | number = 'SIGTERM'): void {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    try {
      pidfdSendSignal(this.pidfd, parseSignal(signal));
    } catch (e) {
      // Reaped already, its exit event not yet emitted: there is nothing left to signal.
      if ((e as { code?: string }).code !== 'ESRCH') throw e;
    }
  }

  /** The namespace's process tree, with host PIDs and PIDs inside. */
  tree(): ProcessNode[] {
    return namespaceTree(this.pid);
  }
}

function closePidfd(fd: number): void {
  try {
    close(fd);
  } catch {
    // already closed
  }
}

/**
 * child_process.spawn, but the child is PID 1 of a new PID namespace. Nothing else changes:
 * the child still sees the host's /proc until it mounts its own (see startPid1).
 */
export function spawnPid1(file: string, args: readonly string[], options: SpawnOptions = {}): Pid1Process {
  const child = inNewPidNamespace(() => spawn(file, args, options));
  return new Pid1Process(child);
}
