// Keepers started ahead of need, for a long-lived front-end (corrald, EngineOptions.resident),
// so that a start that takes one pays no Node start-up. The pool refills in the background.
// By default each is a fast keeper (KeeperClient.run) that has loaded the runtime's code: it
// makes its container itself, in a vfork child, and a refill costs one Node start. With
// `inits`, each has also started its container's init (PID 1 of a fresh PID namespace, koffi
// loaded, parked on its sync socket for a spec): two Node starts a refill, which on a busy
// machine slow the runs beside them more than the parked init saves (bench/daemon), but a
// container the fast path does not make (a terminal, --init, -i) finds its init started.
// A fast keeper asked for such a container starts its init when it is taken.
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
//
// With `shared` (corrald's default) the fast keepers are connections to a shared keeper
// (keeper-host.ts) that keeps up to that many containers: a refill costs a connection, not a
// Node start, and a kept container no Node process of its own. One keeper of its own is
// parked beside them for a container that needs an init.
//
// On cgroup v1 each parked init, once loaded, waits in a cgroup of its own that its container's
// start renames into the container's (keeper-parking.ts): the start pays no move into a cgroup.
import { closeSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';
import { join } from 'node:path';
import type { Cgroup } from '@corral/cgroups';
import { privateDir } from '@corral/image';
import { procStartTime } from '@corral/sys';
import { KeeperClient } from './keeper-client.js';
import { emptyParking, InitParking, reclaimParking } from './keeper-parking.js';
import { SharedKeeper } from './keeper-shared.js';

/** What the pool reports (corrald's /info). */
export interface KeeperPoolStatus {
  /** Keepers it keeps ahead. */
  size: number;
  /** Parked now, loaded (with their init started, for a pool of inits). */
  ready: number;
  /** Being started. */
  starting: number;
  /** Starts that took a parked keeper, and those that found none and started their own. */
  hits: number;
  misses: number;
  /** Hits whose keeper (or its init) was still starting: the start waited for it (a pool that lags). */
  unready: number;
  /** What the parked keepers and their inits hold in memory (Pss, their private share). */
  pssBytes: number;
}

interface Parked {
  keeper: KeeperClient;
  ready: boolean;
  initPid?: number;
  initStartTime?: number;
  /** The cgroup its init waits in (v1), made once the init has loaded. */
  parking?: InitParking;
  /** A fast keeper's: the empty cgroup its container's will be (v1). */
  cgroup?: Cgroup | null;
  /** A connection to this shared keeper. */
  shared?: SharedKeeper;
}

/** A keeper taken from the pool, and the cgroup its init waits in (null: none, see InitParking.take). */
export interface PooledKeeper {
  keeper: KeeperClient;
  cgroup: Promise<Cgroup | null>;
}

export interface KeeperPoolOptions {
  /** The file that parked keepers' stderr goes to (they have no container yet). */
  errorLog: string;
  /**
   * The parent of the containers' cgroups when they name none (a daemon's --cgroup-parent;
   * default: this process's own cgroup). Inits are parked beneath it, so that a container
   * placed there takes its init's cgroup by a rename.
   */
  cgroupParent?: string;
  /** Park each keeper with its container's init started (corrald's --pool-inits). */
  inits?: boolean;
  /**
   * Containers a shared keeper keeps at most (default 1: a keeper each); not with `inits`.
   * Its socket is made in `socketDir` (0700).
   */
  shared?: { perKeeper: number; socketDir: string };
}

/** The longest path a unix socket may have (sun_path, with its NUL). */
const SOCKET_PATH_MAX = 107;

/**
 * Wait before a refill. A spawn blocks this process until the child has exec'd (10-20 ms of
 * fork and exec here, more on a busy machine): the pool refills one keeper at a time, and
 * only while no start or exit is being handled (hold). It does not wait for a quiet spell:
 * with runs back to back (`docker run --rm` in a loop) none came, the pool drained, and each
 * start waited 20-70 ms for a keeper begun during the run before (bench/daemon/run.mjs). The
 * new keeper and init take about 150 ms of CPU to start, at the parked niceness, so they
 * yield to the runs meanwhile (PARKED_NICE).
 */
const REFILL_DELAY_MS = 30;
/**
 * Keepers and inits start and wait parked this much nicer than this process: on a busy
 * machine their start-up yields to the containers being started and ended. The one taken gets
 * this process's niceness back (every thread) before its container is set up, so that the
 * program runs as it would without a pool; where that is not allowed (no CAP_SYS_NICE) they
 * are not made nicer.
 * A keeper has a session of its own, and with the kernel's autogroup scheduling (on by
 * default) each session is a group that gets a fair share of the CPU, whatever the niceness
 * of its threads: a thread's niceness only weighs within its group. So the keeper's group is
 * made nicer too (/proc/PID/autogroup; its init is in it), or a refill took as much CPU as the
 * run it should yield to.
 */
const PARKED_NICE = 10;

export class KeeperPool {
  readonly size: number;
  readonly #errorLog: string;
  readonly #cgroupParent: string | undefined;
  readonly #inits: boolean;
  readonly #shared: { perKeeper: number; socketDir: string } | null;
  /** The shared keeper that takes new containers now. */
  #host: SharedKeeper | null = null;
  readonly #parked = new Set<Parked>();
  #closed = false;
  #refill: NodeJS.Timeout | null = null;
  /** Keepers that died parked, one after the other: the refill backs off (a broken install). */
  #failures = 0;
  #hits = 0;
  #misses = 0;
  #unready = 0;
  #holds = 0;
  /** This process's niceness, and the parked ones' (null: as ours). */
  readonly #ownNice: number;
  readonly #parkedNice: number | null;
  /** This process's autogroup niceness (null: no autogroup scheduling here). */
  readonly #ownGroupNice: number | null;

  constructor(size: number, options: KeeperPoolOptions) {
    this.size = Math.max(0, Math.floor(size));
    this.#errorLog = options.errorLog;
    this.#cgroupParent = options.cgroupParent;
    this.#inits = options.inits ?? false;
    this.#shared = sharing(options);
    // What a pool killed with SIGKILL left parked beneath the same parent.
    reclaimParking(this.#cgroupParent);
    this.#ownNice = getPriority();
    this.#parkedNice = canRenice() ? Math.min(19, this.#ownNice + PARKED_NICE) : null;
    this.#ownGroupNice = autogroupNice(process.pid);
    this.#fill();
  }

  /**
   * A parked keeper (loaded, or loading) for a container in `detached` or `tty` mode, or null
   * when there is none: the caller starts its own. It is the caller's from here on (own it, or
   * kill it). `needsInit`: the container is one a fast keeper cannot make, whose init a fast
   * keeper starts at once (while the caller mounts its root).
   */
  take(needsInit = false): PooledKeeper | null {
    // Ready first; a shared keeper's connection unless the container needs an init.
    const rank = (p: Parked) => (p.ready ? 2 : 0) + (!p.shared === needsInit ? 1 : 0);
    let best: Parked | null = null;
    for (const p of this.#parked) {
      if (!alive(p.keeper) || (needsInit && p.shared)) continue;
      if (!best || rank(p) > rank(best)) best = p;
    }
    if (best) {
      this.#parked.delete(best);
      this.#hits++;
      if (!best.ready) this.#unready++;
      if (this.#parkedNice !== null && !best.shared) this.#unpark(best);
    } else this.#misses++;
    this.#schedule(REFILL_DELAY_MS);
    if (!best) return null;
    if (needsInit) best.keeper.requestInit();
    return { keeper: best.keeper, cgroup: best.parking?.take() ?? Promise.resolve(best.cgroup ?? null) };
  }

  /** The taken keeper and its init (also one still starting) at this process's niceness. */
  #unpark(p: Parked): void {
    if (this.#ownGroupNice !== null) setAutogroupNice(p.keeper.child.pid, this.#ownGroupNice);
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
      this.#schedule(REFILL_DELAY_MS);
    };
  }

  status(): KeeperPoolStatus {
    let ready = 0;
    const pids = new Set<number | undefined>();
    for (const p of this.#parked) {
      if (p.ready && alive(p.keeper)) ready++;
      pids.add(p.keeper.child.pid).add(p.initPid);
    }
    let pssBytes = 0;
    for (const pid of pids) if (pid !== undefined) pssBytes += pssOf(pid);
    return {
      size: this.size,
      ready,
      starting: this.#parked.size - ready,
      hits: this.#hits,
      misses: this.#misses,
      unready: this.#unready,
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
      // Waited for: this process must not end first (its parked keepers are unref'd).
      keeper.child.ref();
      keeper.kill();
      return ended;
    });
    // It keeps its containers running, as keepers of their own do.
    this.#host?.retire();
    this.#host = null;
    const parkings = [...this.#parked].map((p) => p.parking);
    const cgroups = [...this.#parked].map((p) => p.cgroup);
    this.#parked.clear();
    await Promise.all(gone);
    await Promise.all(parkings.map((p) => p?.remove()));
    await Promise.all(cgroups.map((c) => c?.remove().catch(() => {})));
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
    if (this.#closed || this.#holds > 0) return;
    let shared = 0;
    for (const p of this.#parked) if (p.shared) shared++;
    const own = this.#parked.size - shared;
    // Sharing: `size` connections, and one keeper of its own for a container that needs an init.
    if (this.#shared ? shared < this.size : own < this.size) {
      if (this.#shared) this.#parkShared();
      else this.#park();
    } else if (this.#shared && own < Math.min(1, this.size)) this.#park();
    else return;
    this.#schedule(REFILL_DELAY_MS); // the next one, if any is missing
  }

  /** A connection to the shared keeper that takes containers now (started when there is none). */
  #parkShared(): void {
    let host = this.#host;
    if (host && (!host.alive || host.keeping >= this.#shared!.perKeeper)) {
      host.retire();
      host = this.#host = null;
    }
    if (!host) {
      const log = openSync(this.#errorLog, 'a', 0o600);
      try {
        const made = new SharedKeeper(this.#shared!.socketDir, log);
        host = this.#host = made;
        made.listening.then(
          () => this.#schedule(0),
          () => {
            if (this.#host === made) this.#host = null;
            this.#failed();
          },
        );
      } catch {
        this.#failed();
        return;
      } finally {
        closeSync(log);
      }
    }
    if (!host.ready) return; // its `listening` fills the pool
    this.#register({ keeper: host.connect(), ready: false, shared: host });
  }

  #park(): void {
    let keeper: KeeperClient;
    const log = openSync(this.#errorLog, 'a', 0o600);
    try {
      keeper = new KeeperClient('detached', undefined, log, undefined, !this.#inits);
    } catch {
      this.#failed();
      return;
    } finally {
      closeSync(log);
    }
    this.#register({ keeper, ready: false });
  }

  #register(p: Parked): void {
    const { keeper } = p;
    this.#parked.add(p);
    // Its init inherits the niceness of the keeper's main thread, and is in its autogroup. A
    // shared keeper runs the containers it keeps: at this process's niceness.
    if (this.#parkedNice !== null && !p.shared) {
      reniceTasks(keeper.child.pid, null, this.#parkedNice);
      if (this.#ownGroupNice !== null)
        setAutogroupNice(keeper.child.pid, Math.min(19, this.#ownGroupNice + PARKED_NICE));
    }
    // A parked keeper holds nothing that should keep this process alive.
    keeper.child.unref();
    for (const fd of [3, 4]) (keeper.child.stdio[fd] as unknown as { unref?: () => void } | null)?.unref?.();
    if (keeper.fast)
      keeper.loaded.then(() => {
        // Made once it has loaded (a keeper that dies at once leaves none to remove).
        if (this.#parked.has(p) && !this.#closed) p.cgroup = emptyParking(this.#cgroupParent);
        p.ready = true;
        this.#failures = 0;
      });
    else
      keeper.init.then(
        (init) => {
          p.ready = true;
          p.initPid = init.pid;
          p.initStartTime = procStartTime(init.pid) ?? undefined;
          // Taken meanwhile: the start moves the init itself.
          if (this.#parked.has(p)) p.parking = new InitParking(init.pid, p.initStartTime, this.#cgroupParent);
          this.#failures = 0;
        },
        () => {},
      );
    keeper.child.once('exit', () => {
      // Its init ended with it, or was moved to its container's cgroup (gone by this name then);
      // a fast keeper's empty one was renamed into its container's, or is left to remove.
      void p.parking?.remove();
      void p.cgroup?.remove().catch(() => {});
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

/** The pool's sharing, if it shares keepers and their sockets' paths fit (else a keeper each). */
function sharing(o: KeeperPoolOptions): { perKeeper: number; socketDir: string } | null {
  const s = o.shared;
  if (!s || o.inits || s.perKeeper < 2) return null;
  // The keeper's socket: DIR/PID.sock.
  if (Buffer.byteLength(join(s.socketDir, '4194304.sock')) > SOCKET_PATH_MAX) return null;
  try {
    // 0700, whatever made it: another local user who reached a keeper's socket could have it
    // run any bundle as root.
    privateDir(s.socketDir);
  } catch {
    return null; // another user's folder (privateDir refuses it): a keeper each, as without
  }
  // Sockets that shared keepers killed meanwhile left (a live one's is in use: left as it is).
  for (const name of readdirSync(s.socketDir)) {
    const pid = /^(\d+)\.sock$/.exec(name)?.[1];
    if (pid && procStartTime(Number(pid)) === null) rmSync(join(s.socketDir, name), { force: true });
  }
  return { perKeeper: Math.floor(s.perKeeper), socketDir: s.socketDir };
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
 * The niceness of the autogroup `pid` is in ("/autogroup-N nice K"), null without autogroups.
 * The file is empty for a process in the root group (a session never made by setsid since
 * boot, as under some CI agents): its tasks weigh as nice 0 against each autogroup.
 */
function autogroupNice(pid: number): number | null {
  try {
    const text = readFileSync(`/proc/${pid}/autogroup`, 'utf8');
    const m = / nice (-?\d+)/.exec(text);
    return m ? Number(m[1]) : text.trim() === '' ? 0 : null;
  } catch {
    return null; // a kernel without CONFIG_SCHED_AUTOGROUP, or autogroups switched off
  }
}

/** Sets the niceness of the autogroup of `pid`, a child of ours (not reaped: it cannot be another). */
function setAutogroupNice(pid: number | undefined, nice: number): void {
  if (pid === undefined) return;
  try {
    writeFileSync(`/proc/${pid}/autogroup`, String(nice));
  } catch {
    // gone, or autogroups switched off
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
