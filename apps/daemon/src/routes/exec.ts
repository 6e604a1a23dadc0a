import { EngineError, parseDetachKeys } from '@corral/engine';
import { bad, intParam, jsonBody, sendEmpty, sendJson } from '../http.js';
import type { Route } from '../server.js';
import { bindHandle, type ExecRecord } from '../state.js';

const ID = '([^/]+)';

function strings(v: unknown, field: string): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string'))
    throw bad(`${field} must be a list of strings`);
  return v as string[];
}

function execOf(execs: Map<string, ExecRecord>, id: string): ExecRecord {
  const e = execs.get(id);
  if (!e) throw new EngineError('NotFound', `No such exec instance: ${id}`);
  return e;
}

export const execRoutes: Route[] = [
  [
    'POST',
    new RegExp(`^/containers/${ID}/exec$`),
    async (call, d) => {
      const b = await jsonBody(call);
      const r = d.engine.get(call.params[0]);
      if (r.state.status !== 'running') throw new EngineError('Conflict', `Container ${r.id} is not running`);
      if (r.state.paused)
        throw new EngineError('Conflict', `Container ${r.id} is paused, unpause the container before exec`);
      const cmd = strings(b.Cmd, 'Cmd');
      if (!cmd.length) throw bad('No exec command specified');
      if (b.Privileged === true) throw bad('Privileged exec is not supported by corral');
      const size = Array.isArray(b.ConsoleSize) ? (b.ConsoleSize as number[]) : null;
      if (b.DetachKeys !== undefined && typeof b.DetachKeys !== 'string')
        throw bad('DetachKeys must be a string');
      const detachKeys = (b.DetachKeys as string | undefined) ?? '';
      parseDetachKeys(detachKeys); // a bad spec is refused here, as dockerd does
      const e: ExecRecord = {
        id: d.newExecId(),
        containerId: r.id,
        cmd,
        env: strings(b.Env, 'Env'),
        workdir: typeof b.WorkingDir === 'string' ? b.WorkingDir : '',
        user: typeof b.User === 'string' ? b.User : '',
        tty: b.Tty === true,
        attachStdin: b.AttachStdin === true,
        attachStdout: b.AttachStdout === true,
        attachStderr: b.AttachStderr === true,
        running: false,
        exitCode: null,
        handle: null,
        detachKeys,
        ...(size && size[0] > 0 && size[1] > 0 ? { consoleSize: { rows: size[0], cols: size[1] } } : {}),
      };
      d.execs.set(e.id, e);
      sendJson(call, 201, { Id: e.id });
    },
  ],
  [
    'POST',
    new RegExp(`^/exec/${ID}/start$`),
    async (call, d) => {
      const e = execOf(d.execs, call.params[0]);
      const b = await jsonBody(call);
      if (e.running || e.exitCode !== null) throw new EngineError('Conflict', `exec ${e.id} has already run`);
      const detach = b.Detach === true;
      const tty = b.Tty === true || e.tty;
      e.running = true;
      let handle: Awaited<ReturnType<typeof d.engine.exec>>;
      try {
        handle = await d.engine.exec(
          e.containerId,
          { cmd: e.cmd, env: e.env, workdir: e.workdir || undefined, user: e.user || undefined, tty, detach },
          {
            stdin: e.attachStdin ? 'pipe' : 'ignore',
            stdout: 'pipe',
            stderr: 'pipe',
            consoleSize: e.consoleSize,
          },
        );
      } catch (err) {
        e.running = false;
        e.exitCode = 126;
        throw err;
      }
      e.handle = handle;
      void handle.wait().then(
        (code) => {
          e.exitCode = code;
          e.running = false;
          e.handle = null;
        },
        () => {
          e.exitCode = 255;
          e.running = false;
        },
      );
      if (detach) return sendEmpty(call, 200);
      const conn = call.hijack(
        tty ? 'application/vnd.docker.raw-stream' : 'application/vnd.docker.multiplexed-stream',
      );
      const io = { conn, stdin: e.attachStdin, stdout: e.attachStdout, stderr: e.attachStderr };
      bindHandle(handle, tty ? { ...io, detachKeys: parseDetachKeys(e.detachKeys) } : io, tty);
      // The stream ends when the program's output does; inspect then has its exit code.
      await handle.wait().catch(() => {});
    },
  ],
  [
    'POST',
    new RegExp(`^/exec/${ID}/resize$`),
    (call, d) => {
      const e = execOf(d.execs, call.params[0]);
      const h = intParam(call.query, 'h');
      const w = intParam(call.query, 'w');
      if (h === undefined || w === undefined || h < 0 || w < 0) throw bad('h and w are required');
      if (!e.handle) throw new EngineError('Conflict', `exec ${e.id} is not running`);
      e.handle.resize(w, h);
      sendEmpty(call, 200);
    },
  ],
  [
    'GET',
    new RegExp(`^/exec/${ID}/json$`),
    (call, d) => {
      const e = execOf(d.execs, call.params[0]);
      sendJson(call, 200, {
        ID: e.id,
        Running: e.running,
        ExitCode: e.exitCode,
        ProcessConfig: {
          tty: e.tty,
          entrypoint: e.cmd[0],
          arguments: e.cmd.slice(1),
          privileged: false,
          user: e.user,
        },
        OpenStdin: e.attachStdin,
        OpenStderr: e.attachStderr,
        OpenStdout: e.attachStdout,
        CanRemove: false,
        ContainerID: e.containerId,
        DetachKeys: e.detachKeys,
        Pid: 0,
      });
    },
  ],
];
