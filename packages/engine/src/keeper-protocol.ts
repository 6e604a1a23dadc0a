// The protocol between a front-end (the CLI, corrald, or Engine.start in either) and the
// container's keeper (keeper.ts), on the keeper's fd 3: JSON lines both ways. Both ends use
// this module, as the runtime's sync.ts does for its init. The keeper owns the container's
// init from its first instant (it is its parent); the front-end creates and starts the
// container through the init's sync socket (the keeper's fd 4, handed on to the init) and
// then either stays (attached: it records the exit itself when told) or leaves (detached).
import type { Readable, Writable } from 'node:stream';

/** The keeper's control socket, and the socket it hands its init as the init's own fd 3. */
export const KEEPER_CONTROL_FD = 3;
export const KEEPER_SYNC_FD = 4;

/** How the keeper gives the init its stdio. */
export type KeeperMode =
  /** The init gets the keeper's own 0, 1, 2 (the front-end's fds or pipes): `run` attached. */
  | 'attached'
  /** The init's stdout and stderr are pipes the keeper copies into the log: `run -d`, `start`. */
  | 'detached'
  /** No stdio: the init opens a terminal, which the keeper takes for the log when detached. */
  | 'tty';

export type KeeperMessage =
  /** The init runs (not yet set up), with this host PID and start time. */
  | { type: 'init'; pid: number; startTime: number }
  /** A shared keeper (keeper-host.ts) takes connections at `path`, each a container's keeper. */
  | { type: 'listening'; path: string }
  /** The keeper could not start the init. */
  | { type: 'failed'; message: string }
  /** Answer to `run` (a fast keeper): the program runs, with this host PID and start time. */
  | { type: 'ran'; pid: number; startTime: number }
  /** Answer to `run`: the container could not be made; the code runc would exit with. */
  | { type: 'run-failed'; message: string; exitCode: number }
  /** The container's program ended with this code (sent while the front-end is there). */
  | { type: 'exit'; code: number }
  /** Answer to `own`: the log is attached, the container may start. */
  | { type: 'owned' }
  /** A fast keeper has loaded the code that runs its container (a pool's keeper is ready). */
  | { type: 'loaded' };

export type FrontMessage =
  /**
   * To a fast keeper (spawned with `fast`, which starts no init of its own): create and start
   * the container of this OCI bundle at once in a vfork child (the runtime's runFast), whose
   * state goes in the runtime's `runtimeRoot`. Sent after `own`.
   */
  | {
      type: 'run';
      runtimeRoot: string;
      id: string;
      bundle: string;
      /** What the front-end has ready for the run (FastRunOptions.seccompProgram, parkedCgroup). */
      seccompProgram?: string;
      parkedCgroup?: string;
    }
  /** To a fast keeper whose container the fast path cannot make: start a Node init after all. */
  | { type: 'spawn-init' }
  /**
   * The init belongs to this container now: what the keeper needs to finish it alone if the
   * front-end goes. `terminalFd` is the init's terminal master, taken for the log (tty mode).
   * `errorLog`: a file the keeper appends its own stderr to from now on (a keeper started
   * ahead of its container had nowhere to put it).
   */
  | {
      type: 'own';
      root: string;
      id: string;
      detached: boolean;
      terminalFd?: number | null;
      errorLog?: string;
    }
  /** The program runs and the record says so. */
  | { type: 'started' }
  /**
   * The front-end has recorded the exit (attached): nothing is left for the keeper to record.
   * `trash`: the removed --rm container's folder in the data root's trash, for the keeper to
   * delete before it ends (the front-end has exited by then).
   */
  | { type: 'recorded'; trash?: string };

export function writeMessage(out: Writable, m: KeeperMessage | FrontMessage): void {
  out.write(`${JSON.stringify(m)}\n`);
}

/**
 * Calls `on` for each message read from `input`, then `onEnd` once when it ends (the other
 * side went away, or sent something that is not a message: treated alike).
 */
export function readMessages<M extends { type: string }>(
  input: Readable,
  on: (m: M) => void,
  onEnd: () => void,
): void {
  let buf = '';
  let ended = false;
  const end = () => {
    if (ended) return;
    ended = true;
    input.off('data', onData);
    onEnd();
  };
  const onData = (d: Buffer) => {
    buf += d.toString('utf8');
    for (let nl = buf.indexOf('\n'); nl >= 0 && !ended; nl = buf.indexOf('\n')) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      let m: M;
      try {
        m = JSON.parse(line) as M;
        if (typeof m?.type !== 'string') throw new Error('no type');
      } catch {
        end();
        return;
      }
      on(m);
    }
  };
  input.on('data', onData);
  input.on('end', end);
  input.on('close', end);
  input.on('error', end);
}
