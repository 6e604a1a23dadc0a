// A container started in the background under its keeper (keeper.ts), and how a front-end
// that stays records the exit its keeper reports (an attached run; a resident front-end such
// as corrald, see ResidentOptions): the keeper's side of lifecycle.ts.
import { closeSync, openSync } from 'node:fs';
import { join } from 'node:path';
import type { CreatedContainer } from '@corral/runtime';
import type { EngineContext } from './context.js';
import { EngineError } from './errors.js';
import { KEEPER_LOST, KeeperClient, keeperIdentity } from './keeper-client.js';
import { finish, getRecord, keeperFastFor, launch, reconcile } from './lifecycle.js';
import type { ContainerRecord } from './records.js';

/**
 * Starts a container in the background under its keeper (keeper.ts), which keeps its output
 * in the log and records its exit. Resolves once the program is running.
 */
export async function startDetached(
  ctx: EngineContext,
  ref: string,
  /** A keeper the caller started ahead (`new KeeperClient('detached')`, the CLI's run -d). */
  ahead?: KeeperClient,
): Promise<ContainerRecord> {
  let r: ContainerRecord;
  try {
    r = getRecord(ctx, ref);
  } catch (e) {
    ahead?.kill();
    throw e;
  }
  // The caller's keeper serves if it was started for this container's mode; one from a
  // resident front-end's pool serves a terminal's container too.
  if (ahead && ahead.mode !== (r.config.tty ? 'tty' : 'detached')) {
    ahead.kill();
    ahead = undefined;
  }
  const pooled = ahead ? null : (ctx.pool?.take(!keeperFastFor(r, 'detached')) ?? null);
  const keeper = ahead ?? pooled?.keeper ?? newKeeper(ctx, r);
  let created: CreatedContainer;
  const launching = ctx.pool?.hold();
  try {
    created = await launch(ctx, r.id, {
      stdio: 'ignore',
      detached: true,
      keeper,
      parkedCgroup: pooled?.cgroup,
    });
    // The keeper took the terminal for the log; this process needs no copy.
    if (created.terminal !== null) closeSync(created.terminal);
  } catch (e) {
    const now = ctx.records.read(r.id);
    if (now?.hostConfig.autoRemove) ctx.records.remove(now);
    throw e;
  } finally {
    launching?.();
  }
  if (ctx.resident) {
    // This process records the exit when the keeper tells it (the log is whole by then); if
    // it dies first, the keeper records it alone.
    void created.wait().then(
      async (code) => {
        const finishing = ctx.pool?.hold();
        await finishAttached(ctx, r.id, code, keeper)
          .catch(() => {}) // removed meanwhile (rm -f): nothing left to record
          .finally(() => finishing?.());
      },
      () => {},
    );
  } else keeper.release();
  return startedRecord(ctx, r);
}

function newKeeper(ctx: EngineContext, r: ContainerRecord): KeeperClient {
  const keeperLog = openSync(join(ctx.records.dir(r.id), 'keeper.log'), 'a', 0o600);
  try {
    return new KeeperClient(
      r.config.tty ? 'tty' : 'detached',
      undefined,
      keeperLog,
      undefined,
      keeperFastFor(r, 'detached'),
    );
  } finally {
    closeSync(keeperLog);
  }
}

/** How an attached run ended, as its front-end records it: the keeper's word on a lost exit. */
export async function finishAttached(
  ctx: EngineContext,
  id: string,
  code: number,
  keeper: KeeperClient | null,
): Promise<void> {
  // An --rm container's folder is left in the trash for its keeper to delete once this process
  // has reported the exit and gone: the exit code does not wait on it.
  const deleter = keeper && !keeper.lost ? (keeperIdentity(keeper) ?? undefined) : undefined;
  let trash: string | null = null;
  try {
    trash = await finish(ctx, id, code, keeper?.lost ? KEEPER_LOST : undefined, deleter);
  } finally {
    keeper?.recorded(trash ?? undefined);
  }
}

/**
 * The record to answer a start that succeeded with. The watcher runs on its own: an --rm
 * container whose program ends at once may be finished and removed by it at any moment from
 * here on (a fast program on a busy machine), even between two reads of one lookup, which
 * must not turn a start that happened into No such container. So the record is read once, and
 * a removal seen after that answers with the last record read.
 */
function startedRecord(ctx: EngineContext, before: ContainerRecord): ContainerRecord {
  const now = ctx.records.read(before.id);
  if (!now) return before;
  try {
    return reconcile(ctx, now);
  } catch (e) {
    if (e instanceof EngineError && e.kind === 'NotFound') return now;
    throw e;
  }
}
