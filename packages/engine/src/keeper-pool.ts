// Keepers started ahead of need, for a long-lived front-end (corrald, EngineOptions.resident):
// each has already started its container's init (PID 1 of a fresh PID namespace, koffi
// loaded, parked on its sync socket for a spec), so a start that takes one pays no Node
// start-up. The pool refills in the background.
//
// What a parked keeper and init hold: the keeper's two sockets to this process, the init's
// sync socket, /dev/null or pipes to the keeper as stdio, the cwd `/`. The keeper marks every
// other fd it inherited close-on-exec before it starts the init, and the init marks all but
// its stdio again before it execs the program (the runtime's rule); its namespaces, root and
// cwd are the container's by then (pivot_root), and its Node threads end at execve. Nothing
// of the container runs before that. `apps/daemon/test/pool.test.ts` runs the attack.
//
// Parked keepers end when this process does, also when it is SIGKILLed: their control
// socket closes, and a keeper whose front-end goes before its container started kills its
// init and ends (keeper.ts); an init whose sync socket closes ends too.
import { closeSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';
import { procStartTime } from '@corral/sys';
import { KeeperClient } from './keeper-client.js';

/** What the pool reports (corrald's /info). */
export interface KeeperPoolStatus {
  /** Keepers it keeps ahead. */
  size: number;
  /** Parked now with their init started. */
  ready: number;
  /** Being started. */
  starting: number;
  /** Starts that took a parked keeper, and those that found none and started their own. */
  hits: number;
  misses: number;
  /** What the parked keepers and their inits hold in memory (Pss, their private share). */
  pssBytes: number;
}

interface Parked {
  keeper: KeeperClient;
  ready: boolean;
  initPid?: number;
  initStartTime?: number;
}

/**
 * Wait before a refill. A spawn blocks this process until the child has exec'd (10-20 ms of
 * fork and exec here, more on a busy machine), and the new keeper and init then take about
 * 150 ms of CPU to start: the pool refills one keeper at a time, only while no start or exit
 * is being handled (hold), and only once none has been for IDLE_MS, so that a short run
 * (`docker run --rm`: start, program, exit, removal) is over before its refill begins. An
 * empty pool refills sooner: the next start would find nothing.
 */
const REFILL_DELAY_MS = 30;
const IDLE_MS = 100;
/**
 * Keepers and inits start and wait parked this much nicer than this process: on a busy
 * machine their start-up yields to the containers being started and ended. The one taken gets
 * this process's niceness back (every thread) before its container is set up, so that the
 * program runs as it would without a pool; where that is not allowed (no CAP_SYS_NICE) they
 * are not made nicer.
 */
const PARKED_NICE = 10;

export class KeeperPool {
  readonly size: number;
  readonly #errorLog: string;
  readonly #parked = new Set<Parked>();
  #closed = false;
  #refill: NodeJS.Timeout | null = null;
  /** Keepers that died parked, one after the other: the refill backs off (a broken install). */
  #failures = 0;
  #hits = 0;
  #misses = 0;
  #holds = 0;
  /** When a start or exit was last taken up or done (Date.now()). */
  #lastActive = 0;
  /** This process's niceness, and the parked ones' (null: as ours). */
  readonly #ownNice: number;
  readonly #parkedNice: number | null;

  /** `errorLog`: the file that parked keepers' stderr goes to (they have no container yet). */
  constructor(size: number, errorLog: string) {
    this.size = Math.max(0, Math.floor(size));
    this.#errorLog = errorLog;
    this.#ownNice = getPriority();
    this.#parkedNice = canRenice() ? Math.min(19, this.#ownNice + PARKED_NICE) : null;
    this.#fill();
  }

  /**
   * A parked keeper (its init started, or starting) for a container in `detached` or `tty`
   * mode, or null when there is none: the caller starts its own. It is the caller's from here
   * on (own it, or kill it).
   */
  take(): KeeperClient | null {
    let best: Parked | null = null;
    for (const p of this.#parked) {
      if (!alive(p.keeper)) continue;
      if (p.ready) {
        best = p;
        break;
      }
      best ??= p;
    }
    if (best) {
      this.#parked.delete(best);
      this.#hits++;
      if (this.#parkedNice !== null) this.#unpark(best);
    } else this.#misses++;
    this.#lastActive = Date.now();
    this.#schedule(REFILL_DELAY_MS);
    return best?.keeper ?? null;
  }

  /** The taken keeper and its init (also one still starting) at this process's niceness. */
  #unpark(p: Parked): void {
    reniceTasks(p.keeper.child.pid, null, this.#ownNice);
    p.keeper.init.then(
      (init) => reniceTasks(init.pid, p.initStartTime ?? procStartTime(init.pid), this.#ownNice),
      () => {},
    );
  }

  /** A start or an exit is being handled until the returned function is called: no refill meanwhile. */
  hold(): () => void {
    this.#holds++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#holds--;
      this.#lastActive = Date.now();
      this.#schedule(REFILL_DELAY_MS);
    };
  }

  status(): KeeperPoolStatus {
    let ready = 0;
    let pssBytes = 0;
    for (const p of this.#parked) {
      if (p.ready && alive(p.keeper)) ready++;
      for (const pid of [p.keeper.child.pid, p.initPid]) if (pid !== undefined) pssBytes += pssOf(pid);
    }
    return {
      size: this.size,
      ready,
      starting: this.#parked.size - ready,
      hits: this.#hits,
      misses: this.#misses,
      pssBytes,
    };
  }

  /** Ends every parked keeper (and its init) and starts no more; resolves once they are gone. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#refill) clearTimeout(this.#refill);
    const gone = [...this.#parked].map(({ keeper }) => {
      const ended = new Promise<void>((r) => {
        if (!alive(keeper)) r();
        else keeper.child.once('exit', () => r());
      });
      keeper.kill();
      return ended;
    });
    this.#parked.clear();
    await Promise.all(gone);
  }

  #schedule(ms: number): void {
    if (this.#closed || this.#refill) return;
    this.#refill = setTimeout(() => {
      this.#refill = null;
      this.#fill();
    }, ms);
    this.#refill.unref();
  }

  #fill(): void {
    if (this.#closed || this.#holds > 0 || this.#parked.size >= this.size) return;
    const quiet = Date.now() - this.#lastActive;
    if (this.#parked.size > 0 && quiet < IDLE_MS) {
      this.#schedule(IDLE_MS - quiet);
      return;
    }
    this.#park();
    this.#schedule(REFILL_DELAY_MS); // the next one, if any is missing
  }

  #park(): void {
    let keeper: KeeperClient;
    const log = openSync(this.#errorLog, 'a', 0o600);
    try {
      keeper = new KeeperClient('detached', undefined, log);
    } catch {
      this.#failed();
      return;
    } finally {
      closeSync(log);
    }
    const p: Parked = { keeper, ready: false };
    this.#parked.add(p);
    // Its init inherits the niceness of the keeper's main thread.
    if (this.#parkedNice !== null) reniceTasks(keeper.child.pid, null, this.#parkedNice);
    // A parked keeper holds nothing that should keep this process alive.
    keeper.child.unref();
    for (const fd of [3, 4]) (keeper.child.stdio[fd] as unknown as { unref?: () => void } | null)?.unref?.();
    keeper.init.then(
      (init) => {
        p.ready = true;
        p.initPid = init.pid;
        p.initStartTime = procStartTime(init.pid) ?? undefined;
        this.#failures = 0;
      },
      () => {},
    );
    keeper.child.once('exit', () => {
      if (!this.#parked.delete(p)) return; // taken: no longer ours
      this.#failed();
    });
  }

  /** A keeper died parked: another later, longer each time it happens again. */
  #failed(): void {
    this.#failures++;
    this.#schedule(Math.min(30_000, 100 * 2 ** Math.min(this.#failures, 9)));
  }
}

/** A process's proportional set size (smaps_rollup), 0 when it is gone. */
function pssOf(pid: number): number {
  try {
    const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Whether this process may make others less nice again (CAP_SYS_NICE, bit 23). */
function canRenice(): boolean {
  try {
    const m = /^CapEff:\s+([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    return m !== null && (BigInt(`0x${m[1]}`) & (1n << 23n)) !== 0n;
  } catch {
    return false;
  }
}

/**
 * Sets the niceness of every thread of `pid` (Linux keeps one per thread), when it is still
 * the process started at `startTime` (null: a child of ours, not reaped, cannot be another).
 */
function reniceTasks(pid: number | undefined, startTime: number | null, nice: number): void {
  if (pid === undefined || (startTime !== null && procStartTime(pid) !== startTime)) return;
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return; // gone
  }
  for (const tid of tasks) {
    try {
      setPriority(Number(tid), nice);
    } catch {
      // the thread ended meanwhile
    }
  }
}

function alive(k: KeeperClient): boolean {
  return k.child.exitCode === null && k.child.signalCode === null;
}
