import { EngineError, parseDetachKeys, parseTime } from '@corral/engine';
import { bad, clientGone, flag, intParam, jsonStream, mustRes, sendEmpty } from '../http.js';
import { drained, framesOf } from '../log-frames.js';
import type { Route } from '../server.js';
import { bindInput, type DaemonState, type PendingAttach } from '../state.js';
import { statsJson } from '../stats.js';

const ID = '([^/]+)';

/**
 * POST /containers/{id}/wait: headers at once, then `{StatusCode}` when the condition holds:
 * not-running (default), next-exit, removed. The exit code comes from the engine's `die`
 * event, so an --rm container removed before the answer still has one.
 */
async function waitFor(d: DaemonState, ref: string, condition: string, gone: AbortSignal): Promise<number> {
  const t0 = Date.now();
  const r = d.engine.get(ref);
  if (condition === 'not-running' && r.state.status !== 'running') return r.state.exitCode ?? 0;
  // Events from before the read above: an exit recorded after it is never missed.
  const events = d.engine.events({
    since: t0,
    filters: { container: [r.id], event: ['die', 'destroy'] },
    signal: gone,
  });
  let code: number | null = null;
  for await (const e of events) {
    if (e.Action === 'die') {
      code = Number(e.Actor.Attributes.exitCode ?? 0);
      if (condition !== 'removed') return code;
    }
    // As dockerd: a removal answers every waiter (one for next-exit of a container removed
    // without running again too), with the last exit code known.
    if (e.Action === 'destroy') return code ?? r.state.exitCode ?? 0;
  }
  return code ?? 0;
}

export const streamRoutes: Route[] = [
  [
    'POST',
    new RegExp(`^/containers/${ID}/wait$`),
    async (call, d) => {
      const condition = call.query.get('condition') || 'not-running';
      if (!['not-running', 'next-exit', 'removed'].includes(condition))
        throw bad(`invalid condition ${condition}: not-running, next-exit or removed`);
      const r = d.engine.get(call.params[0]);
      const res = mustRes(call);
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.flushHeaders();
      const code = await waitFor(d, r.id, condition, clientGone(call));
      res.end(`${JSON.stringify({ StatusCode: code, Error: null })}\n`);
    },
  ],
  [
    'POST',
    new RegExp(`^/containers/${ID}/attach$`),
    async (call, d) => {
      const r = d.engine.get(call.params[0]);
      const q = call.query;
      const a = {
        stdin: flag(q, 'stdin'),
        stdout: flag(q, 'stdout'),
        stderr: flag(q, 'stderr'),
        tty: r.config.tty,
      };
      const stream = flag(q, 'stream');
      const logs = flag(q, 'logs');
      // A body (dockerode sends its options as one) comes before the client's stdin: read off.
      await call.body();
      if (!stream && !logs) throw bad('at least one of stream or logs must be set');
      // As dockerd: a container without an open stdin (-i) takes no input from its clients.
      if (!r.config.openStdin) a.stdin = false;
      // With a TTY the detach keys (ctrl-p,ctrl-q unless the client names its own) end this
      // attachment and leave the container running; a bad spec is refused before the upgrade.
      const detachKeys = r.config.tty ? parseDetachKeys(q.get('detachKeys') ?? undefined) : undefined;
      // A running container's stdin is held by its keeper: the client's input goes there
      // (also after a restart of this daemon). Refused before the upgrade when it cannot.
      const keptStdin = r.state.status === 'running' && a.stdin && stream ? await d.engine.stdin(r.id) : null;
      const conn = call.hijack(
        r.config.tty ? 'application/vnd.docker.raw-stream' : 'application/vnd.docker.multiplexed-stream',
      );
      const pending: PendingAttach = { conn, ...a, ...(detachKeys ? { detachKeys } : {}) };
      if (r.state.status === 'created' && stream) {
        d.pending.set(r.id, [...(d.pending.get(r.id) ?? []), pending]);
        // The client's input ended before the start: it still reads the output, and the
        // program's stdin ends as soon as it runs (start).
        conn.once('end', () => {
          if (pending.stdin) pending.inputEnded = true;
          pending.stdin = false;
        });
        conn.once('close', () => {
          const left = (d.pending.get(r.id) ?? []).filter((p) => p !== pending);
          if (left.length) d.pending.set(r.id, left);
          else d.pending.delete(r.id);
        });
        return;
      }
      if (r.state.status === 'running' && stream) {
        // The client's EOF (or its going away) ends the program's stdin only when the
        // container is stdinOnce without a TTY; a detach never does.
        if (keptStdin) bindInput(pending, keptStdin, r.config.stdinOnce === true && !r.config.tty);
        await d.followLog(r.id, pending, r.config.tty, logs ? undefined : 0, false, keptStdin !== null);
        return;
      }
      await d.followLog(r.id, pending, r.config.tty, logs ? undefined : 0);
    },
  ],
  [
    'GET',
    new RegExp(`^/containers/${ID}/logs$`),
    async (call, d) => {
      const q = call.query;
      const stdout = flag(q, 'stdout');
      const stderr = flag(q, 'stderr');
      if (!stdout && !stderr) throw bad('you must choose at least one stream');
      const r = d.engine.get(call.params[0]);
      const tailRaw = q.get('tail');
      const tail = !tailRaw || tailRaw === 'all' ? undefined : intParam(q, 'tail');
      const since = q.get('since') && q.get('since') !== '0' ? parseTime(q.get('since')!) : undefined;
      const until = q.get('until') && q.get('until') !== '0' ? parseTime(q.get('until')!) : undefined;
      const timestamps = flag(q, 'timestamps');
      const gone = clientGone(call);
      const res = mustRes(call);
      res.writeHead(200, {
        'Content-Type': r.config.tty
          ? 'application/vnd.docker.raw-stream'
          : 'application/vnd.docker.multiplexed-stream',
      });
      res.flushHeaders();
      const batches = d.engine.logBatches(r.id, { follow: flag(q, 'follow'), tail, since, until });
      for await (const batch of batches) {
        if (gone.aborted) break;
        const data = framesOf(batch, { tty: r.config.tty, stdout, stderr, timestamps });
        if (data && !res.write(data)) await drained(res, gone);
      }
      res.end();
    },
  ],
  [
    'GET',
    new RegExp(`^/containers/${ID}/stats$`),
    async (call, d) => {
      const r = d.engine.get(call.params[0]);
      const stream = flag(call.query, 'stream', true);
      const oneShot = flag(call.query, 'one-shot');
      const out = jsonStream(call);
      if (r.state.status !== 'running') {
        out.write(statsJson(r, null));
        return out.end();
      }
      const gone = clientGone(call);
      const rounds = d.engine.statsStream({
        refs: [r.id],
        once: !stream,
        firstDelayMs: oneShot ? 0 : 500,
        signal: gone,
      });
      try {
        for await (const round of rounds) {
          for (const s of round) out.write(statsJson(r, s));
          if (!stream) break;
        }
      } catch {
        // it ended
      }
      out.end();
    },
  ],
  [
    'POST',
    new RegExp(`^/containers/${ID}/resize$`),
    async (call, d) => {
      const r = d.engine.get(call.params[0]);
      const h = intParam(call.query, 'h');
      const w = intParam(call.query, 'w');
      if (h === undefined || w === undefined || h < 0 || w < 0) throw bad('h and w are required');
      if (r.state.status !== 'running') throw new EngineError('Conflict', `Container ${r.id} is not running`);
      // Its keeper holds the terminal: attached or not, the size is set there.
      await d.engine.resize(r.id, w, h);
      sendEmpty(call, 200);
    },
  ],
  [
    'GET',
    new RegExp(`^/containers/${ID}/export$`),
    async (call, d) => {
      const r = d.engine.get(call.params[0]);
      const res = mustRes(call);
      res.writeHead(200, { 'Content-Type': 'application/x-tar' });
      await d.engine.exportContainer(r.id, res);
    },
  ],
];
