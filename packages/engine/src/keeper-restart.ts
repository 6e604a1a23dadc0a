// What a keeper does with the engine loaded, once its front-end has gone: record how the
// container ended (finish: exit code, finish time, mount, network, --rm), and apply the
// restart policy (Docker's restart manager: back-off, restart count, `stop` ends it).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Pid1Process } from '@corral/pidns';
import { spawnInit } from '@corral/runtime/init-process';
import { procStartTime } from '@corral/sys';
import { EngineContext } from './context.js';
import { serveStdin, terminalWriter } from './keeper-stdin.js';
import { startTasks } from './keeper-tasks.js';
import { trimAfterOutput } from './keeper-trim.js';
import { finish, launch, sleep } from './lifecycle.js';
import { LogWriter } from './logs.js';
import { nextDelay, shouldRestart } from './restart.js';
import { logRotation } from './run-options.js';
import { terminalOutput } from './terminal.js';

/** Records the exit (the front-end could not), then restarts the container if its policy says so. */
export async function finishAlone(root: string, id: string, code: number, ranForMs: number): Promise<void> {
  // A data root removed under a running container (a test's teardown) is not made again.
  if (!existsSync(join(root, 'containers', id))) return;
  const ctx = new EngineContext({ root });
  await finish(ctx, id, code).catch(() => {}); // removed meanwhile (rm -f)
  await restartLoop(ctx, id, code, ranForMs);
}

/** After an exit the front-end recorded: restarts while the policy says so. */
export async function keepRestarting(
  root: string,
  id: string,
  code: number,
  ranForMs: number,
): Promise<void> {
  if (!existsSync(join(root, 'containers', id))) return;
  await restartLoop(new EngineContext({ root }), id, code, ranForMs);
}

function wantsRestart(ctx: EngineContext, id: string, exitCode: number): boolean {
  const r = ctx.records.read(id);
  if (!r || r.state.status === 'running') return false;
  return shouldRestart(r.hostConfig.restartPolicy, {
    exitCode,
    restartCount: r.state.restartCount ?? 0,
    stopRequested: r.state.stopRequested ?? false,
  });
}

function setRestarting(ctx: EngineContext, id: string, on: boolean): void {
  try {
    ctx.records.update(id, (x) => {
      x.state.restarting = on;
      if (on) {
        x.state.watcherPid = process.pid;
        x.state.keeperStartTime = procStartTime(process.pid) ?? undefined;
      }
    });
  } catch {
    // removed meanwhile
  }
}

async function restartLoop(
  ctx: EngineContext,
  id: string,
  firstCode: number,
  firstRanFor: number,
): Promise<void> {
  let code = firstCode;
  let ranFor = firstRanFor;
  let delay = 0;
  for (;;) {
    if (!wantsRestart(ctx, id, code)) return setRestarting(ctx, id, false);
    delay = nextDelay(delay, ranFor);
    setRestarting(ctx, id, true);
    // The back-off, ended early by `stop`, `kill` or `rm`.
    const until = Date.now() + delay;
    while (Date.now() < until && wantsRestart(ctx, id, code)) await sleep(Math.min(50, until - Date.now()));
    if (!wantsRestart(ctx, id, code)) return setRestarting(ctx, id, false);
    const started = Date.now();
    const run = await relaunch(ctx, id);
    if (run === null) return setRestarting(ctx, id, false);
    code = await run;
    ranFor = Date.now() - started;
  }
}

/** Starts the container again under this keeper; resolves with its run's exit code, recorded. */
async function relaunch(ctx: EngineContext, id: string): Promise<Promise<number> | null> {
  const r = ctx.records.read(id);
  if (!r) return null;
  // A -i container keeps an open stdin across its restarts, served to clients as at its start.
  const keepStdin = r.config.openStdin === true && !r.config.tty;
  const stdin = keepStdin ? 'pipe' : 'ignore';
  const init: Pid1Process | undefined = r.config.tty
    ? undefined
    : spawnInit({ stdio: [stdin, 'pipe', 'pipe'] });
  let created: Awaited<ReturnType<typeof launch>>;
  try {
    const input = init?.child.stdin;
    if (keepStdin && input) {
      input.on('error', () => {});
      // Clients not reaching it is no reason not to restart.
      await serveStdin(ctx.records.dir(id), {
        input,
        terminal: null,
        once: r.config.stdinOnce === true,
      }).catch(() => {});
    }
    created = await launch(ctx, id, {
      stdio: [stdin, 'pipe', 'pipe'],
      detached: true,
      init,
      restarted: true,
    });
  } catch (e) {
    ctx.records.update(id, (x) => {
      x.state.error = `restarting: ${(e as Error).message}`;
    });
    return null;
  }
  const log = new LogWriter(ctx.logPath(id), logRotation(r));
  let served: { close(): void } | null = null;
  if (created.terminal !== null) {
    const master = created.terminal;
    const output = terminalOutput(master);
    log.attach(output, 'stdout');
    trimAfterOutput([output]);
    // The new terminal takes clients' input (-i) and sizes as the first one did; the log's
    // reader closes the master, so input is written to it, never closes it.
    served = await serveStdin(ctx.records.dir(id), {
      input: r.config.openStdin ? terminalWriter(master) : null,
      terminal: master,
      once: false,
    }).catch(() => null);
  } else {
    log.attach(created.stdout!, 'stdout');
    log.attach(created.stderr!, 'stderr');
    trimAfterOutput([created.stdout!, created.stderr!]);
  }
  const stopTasks = await startTasks(ctx.root, id);
  return (async () => {
    const code = await created.wait();
    served?.close();
    await stopTasks().catch(() => {});
    await log.finished;
    await finish(ctx, id, code).catch(() => {});
    return code;
  })();
}
