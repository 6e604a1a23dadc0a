// What a keeper does for one container (keeper.ts runs one per process; keeper-host.ts many in
// one process): it keeps the container's init or program as its child, reports to the
// front-end on `control`, and once the front-end has gone keeps the log, records the exit,
// removes an --rm container, runs the per-container tasks and applies the restart policy.
import { closeSync, openSync, readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { spawnInit } from '@corral/runtime/init-process';
import { dup2, pidfdGetfd, procStartTime } from '@corral/sys';
import {
  type FrontMessage,
  KEEPER_SYNC_FD,
  type KeeperMode,
  readMessages,
  writeMessage,
} from './keeper-protocol.js';
import { trimAfterOutput } from './keeper-trim.js';

export type FastModule = typeof import('./keeper-fast.js');

export interface KeepOptions {
  mode: KeeperMode;
  /**
   * Its container is made by runFast in this process (keeper-fast.ts, loaded and warmed by the
   * caller; a rejection makes each run fail and say why); null: an init (keeper.ts).
   */
  fastModule: Promise<FastModule> | null;
  /**
   * One of many containers of a shared keeper (keeper-host.ts): the process's stdio, fd 4 and
   * stderr are not this container's, and no init is started (a run only).
   */
  hosted: boolean;
}

/** The runtime's code for a fast keeper's runs, loaded and warmed (see keeper-fast.ts warm). */
export function loadFastModule(): Promise<FastModule> {
  return import('./keeper-fast.js').then((f) => {
    try {
      f.warm();
    } catch {
      // the run meets it again, and says why
    }
    return f;
  });
}

/** Keeps one container until it has ended and what it leaves is done (see the top). */
export async function keepContainer(control: Socket, o: KeepOptions): Promise<void> {
  const { mode, fastModule, hosted } = o;
  /** What the keeper keeps: the container's Node init, or (fast) its program. */
  interface Kept {
    pid: number;
    pidfd: number;
    stdin: Writable | null;
    stdout: Readable | null;
    stderr: Readable | null;
    kill(signal: NodeJS.Signals): void;
    wait(): Promise<number>;
  }
  let init: Kept | null = null;
  let settleKept: (k: Kept | null) => void = () => {};
  /** Resolves with what we keep, or null when the front-end went before there was any. */
  const kept = new Promise<Kept | null>((r) => (settleKept = r));

  /**
   * The program has the front-end's stdio now (attached); the keeper holds no copy (a pipe's
   * reader sees its end when the program's ends).
   */
  function dropStdio(): void {
    if (mode !== 'attached') return;
    const devnull = openSync('/dev/null', 'r+');
    for (const fd of [0, 1, 2]) dup2(devnull, fd);
    closeSync(devnull);
  }

  function keep(k: Kept): void {
    init = k;
    settleKept(k);
  }

  function startInit(): void {
    if (hosted) {
      writeMessage(control, { type: 'failed', message: 'a shared keeper starts no init' });
      return;
    }
    let p: ReturnType<typeof spawnInit>;
    try {
      p = spawnInit({
        // Detached, the program's stdin is a pipe we hold: kept for a -i container (keepStdin),
        // else replaced by /dev/null in the init (the launch's nullStdin).
        stdio: mode === 'attached' ? [0, 1, 2] : mode === 'detached' ? ['pipe', 'pipe', 'pipe'] : 'ignore',
        syncFd: KEEPER_SYNC_FD,
      });
    } catch (e) {
      writeMessage(control, { type: 'failed', message: (e as Error).message });
      process.exit(1);
    }
    closeSync(KEEPER_SYNC_FD);
    dropStdio();
    const { stdin, stdout, stderr } = p.child;
    keep({ pid: p.pid, pidfd: p.pidfd, stdin, stdout, stderr, kill: (s) => p.kill(s), wait: () => p.wait() });
    writeMessage(control, { type: 'init', pid: p.pid, startTime: procStartTime(p.pid) ?? 0 });
  }

  fastModule?.then(
    () => writeMessage(control, { type: 'loaded' }),
    () => {}, // a run then says why
  );
  /** A detached fast keeper's output pipes, made when the log is attached (before the run). */
  let fastPipes: import('./keeper-fast.js').OutputPipes | null = null;
  let running = false;

  /** Answers `run`: the container made and started at once, or why not. */
  async function runContainer(m: {
    runtimeRoot: string;
    id: string;
    bundle: string;
    seccompProgram?: string;
    parkedCgroup?: string;
  }): Promise<void> {
    if (init || running || !fastModule) {
      writeMessage(control, {
        type: 'run-failed',
        message: 'this keeper cannot run a container now',
        exitCode: 125,
      });
      return;
    }
    running = true;
    try {
      const f = await fastModule;
      if (mode === 'detached') fastPipes ??= f.outputPipes();
      const program = await f.runContainer(m.runtimeRoot, m.id, m.bundle, fastPipes?.fds, {
        seccompProgram: m.seccompProgram,
        parkedCgroup: m.parkedCgroup,
      });
      if (!hosted) closeSync(KEEPER_SYNC_FD);
      dropStdio();
      keep({ ...program, stdin: null, stdout: fastPipes?.stdout ?? null, stderr: fastPipes?.stderr ?? null });
      // The front-end went while it was made: nobody will start it (see the end of the control socket).
      if (frontGone && !started) program.kill('SIGKILL');
      else writeMessage(control, { type: 'ran', pid: program.pid, startTime: program.startTime });
    } catch (e) {
      const exitCode = (e as { exitCode?: number }).exitCode ?? 125;
      writeMessage(control, { type: 'run-failed', message: (e as Error).message, exitCode });
      if (frontGone) settleKept(null);
    } finally {
      running = false;
    }
  }

  if (!fastModule) startInit();

  let owner: { root: string; id: string; detached: boolean } | null = null;
  let started = false;
  let startedAt = 0;
  let recorded = false;
  /** The --rm container's folder in the trash, ours to delete once the front-end has gone. */
  let trash = null as string | null;
  let frontGone = false;
  let log = null as { finished: Promise<void> } | null;
  let stopTasks = null as (() => Promise<void>) | null;
  let frontSettled: () => void = () => {};
  const front = new Promise<void>((r) => (frontSettled = r));

  /** The record as stored, read without the engine (null once removed). */
  function storedRecord(): { hostConfig?: { restartPolicy?: { name: string } } } | null {
    if (!owner) return null;
    try {
      return JSON.parse(readFileSync(join(owner.root, 'containers', owner.id, 'container.json'), 'utf8'));
    } catch {
      return null;
    }
  }

  async function keepLog(terminalFd: number | null | undefined): Promise<void> {
    const { LogWriter } = await import('./logs.js');
    const { root, id } = owner!;
    const writer = new LogWriter(join(root, 'containers', id, `${id}-json.log`), await logRotationOf());
    if (mode !== 'attached' && init && terminalFd !== null && terminalFd !== undefined) {
      // With a terminal both streams are one: Docker logs it all as stdout. (A keeper parked in
      // `detached` mode serves a tty container too: the init's pipes end when it takes the pty.)
      const { terminalOutput } = await import('./terminal.js');
      const output = terminalOutput(pidfdGetfd(init.pidfd, terminalFd));
      writer.attach(output, 'stdout');
      trimAfterOutput([output]);
      for (const s of [init.stdout, init.stderr]) s?.resume();
    } else if (mode === 'detached') {
      // A fast keeper owns its container before it runs it: the pipes the program will get.
      if (!init && fastModule) fastPipes ??= (await fastModule).outputPipes();
      const { stdout, stderr } = (init ?? fastPipes) as { stdout: Readable; stderr: Readable };
      writer.attach(stdout, 'stdout');
      writer.attach(stderr, 'stderr');
      trimAfterOutput([stdout, stderr]);
    }
    log = writer;
  }

  /** The json-file log's rotation, if the record asks for one (loaded only then). */
  async function logRotationOf() {
    const r = storedRecord() as { hostConfig?: { logConfig?: unknown } } | null;
    if (!r?.hostConfig?.logConfig) return null;
    const { logRotation } = await import('./run-options.js');
    return logRotation(r as never);
  }

  /** Our stderr from now on goes to `file` (appended): what a keeper has to say once alone. */
  function logErrorsTo(file: string): void {
    if (hosted) return; // the shared keeper's stderr is its maker's log
    try {
      const fd = openSync(file, 'a', 0o600);
      dup2(fd, 2);
      closeSync(fd);
    } catch {
      // the stderr we have stays
    }
  }

  /**
   * A detached -i or -t container's input: served to attached clients (keeper-stdin.ts) before
   * the container starts, its pipe or its terminal (input with -i, and sizes); anyone else's
   * pipe is closed here (its init has /dev/null instead).
   */
  async function keepStdin(terminalFd: number | null | undefined): Promise<unknown> {
    const stdin = init?.stdin ?? null;
    stdin?.on('error', () => {});
    const r = storedRecord() as {
      config?: { openStdin?: boolean; stdinOnce?: boolean; tty?: boolean };
    } | null;
    const tty = r?.config?.tty === true;
    const open = r?.config?.openStdin === true;
    if (!owner?.detached || !(open || tty) || (tty ? terminalFd == null : !stdin)) {
      stdin?.destroy();
      return;
    }
    const { serveStdin, terminalInput } = await import('./keeper-stdin.js');
    const dir = join(owner.root, 'containers', owner.id);
    if (!tty) return serveStdin(dir, { input: stdin!, terminal: null, once: r!.config!.stdinOnce === true });
    stdin?.destroy();
    // What clients send is typed at the terminal, and their sizes set on it (the log reads its
    // output through its own fd).
    const master = pidfdGetfd(init!.pidfd, terminalFd!);
    return serveStdin(dir, { input: open ? terminalInput(master) : null, terminal: master, once: false });
  }

  readMessages<FrontMessage>(
    control,
    (m) => {
      if (m.type === 'own') {
        owner = { root: m.root, id: m.id, detached: m.detached };
        if (m.errorLog) logErrorsTo(m.errorLog);
        const attachLog = Promise.all([
          mode !== 'attached' && m.detached ? keepLog(m.terminalFd) : undefined,
          keepStdin(m.terminalFd),
        ]);
        attachLog.then(
          () => writeMessage(control, { type: 'owned' }),
          () => control.destroy(),
        );
      } else if (m.type === 'run') {
        void runContainer(m);
      } else if (m.type === 'spawn-init') {
        if (!init && !running) startInit();
      } else if (m.type === 'started') {
        started = true;
        startedAt = Date.now();
        void import('./keeper-tasks.js').then(async (t) => {
          stopTasks = await t.startTasks(owner!.root, owner!.id);
        });
      } else if (m.type === 'recorded') {
        recorded = true;
        // Only a folder of the container's own data root's trash.
        const bin = owner ? join(owner.root, 'trash', '/') : null;
        trash = bin && m.trash?.startsWith(bin) && !m.trash.includes('/../') ? m.trash : null;
        frontSettled();
      }
    },
    () => {
      frontGone = true;
      // A container whose front-end went before its program ran is not started by anyone:
      // the front-end's undo, or the next command's reclaim, takes what it made.
      if (!started) init?.kill('SIGKILL');
      // Nothing to keep, and nothing on its way (a run answers for itself).
      if (!init && !running) settleKept(null);
      frontSettled();
      control.destroy();
    },
  );

  const program = await kept;
  if (!program) return;
  const code = await program.wait();
  await stopTasks?.().catch(() => {});
  if (!frontGone) {
    // A front-end that stays (corrald) records the exit as soon as it hears it: the log is
    // whole by then, so its followers end with the last line.
    await log?.finished;
    if (!frontGone) writeMessage(control, { type: 'exit', code });
  }
  await front;
  if (owner && started) {
    const { root, id } = owner;
    const ranFor = Date.now() - startedAt;
    if (!recorded) {
      await log?.finished;
      const { finishAlone } = await import('./keeper-restart.js');
      await finishAlone(root, id, code, ranFor);
    } else if ((storedRecord()?.hostConfig?.restartPolicy?.name ?? 'no') !== 'no') {
      const { keepRestarting } = await import('./keeper-restart.js');
      await keepRestarting(root, id, code, ranFor);
    }
  }
  if (trash) {
    const { emptyTrashDir } = await import('./trash.js');
    emptyTrashDir(trash);
  }
}
