import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { CorralError, type Engine, EngineError } from '@corral/engine';
import {
  API_VERSION,
  type Call,
  compareVersions,
  errorStatus,
  MIN_API_VERSION,
  readAll,
  readUpgradeBody,
  streamResponse,
} from './http.js';
import type { Logger } from './log.js';
import { archiveRoutes } from './routes/archive.js';
import { containerRoutes } from './routes/containers.js';
import { corralRoutes } from './routes/corral.js';
import { execRoutes } from './routes/exec.js';
import { imageRoutes } from './routes/images.js';
import { networkRoutes } from './routes/networks.js';
import { streamRoutes } from './routes/streams.js';
import { systemRoutes } from './routes/system.js';
import { volumeRoutes } from './routes/volumes.js';
import { DaemonState } from './state.js';

export type Handler = (call: Call, d: DaemonState) => Promise<void> | void;
export type Route = [method: string, pattern: RegExp, handler: Handler];

export interface DaemonOptions {
  engine: Engine;
  log: Logger;
  /** What /info reports. */
  info: { dataRoot: string; execRoot: string; cgroupParent?: string; insecureRegistries: string[] };
}

const VERSION_PREFIX = /^\/v(\d+\.\d+)(\/.*)$/;

/**
 * corral's own headers on an error answer: the engine's error kind (and the registry to log in
 * to, the repair), so that `corral --host` exits and words it as the daemonless CLI does.
 */
function errorHeaders(e: unknown): Record<string, string> {
  if (!(e instanceof CorralError)) return {};
  const registry = e instanceof EngineError ? e.registry : undefined;
  return {
    'X-Corral-Error-Kind': e.kind,
    ...(registry ? { 'X-Corral-Error-Registry': registry } : {}),
    ...(e.repair ? { 'X-Corral-Error-Repair': e.repair } : {}),
  };
}

/** The Docker Engine API over one engine: routes by resource, errors as Docker's bodies. */
export function createDaemonServer(options: DaemonOptions): Server {
  const state = new DaemonState(options.engine, options.log, options.info);
  const routes: Route[] = [
    ...systemRoutes,
    ...containerRoutes,
    ...volumeRoutes,
    ...networkRoutes,
    ...streamRoutes,
    ...archiveRoutes,
    ...execRoutes,
    ...imageRoutes,
    ...corralRoutes,
  ];
  const server = createServer({ keepAliveTimeout: 30_000 });
  const dispatch = async (
    req: IncomingMessage,
    res: ServerResponse | null,
    socket: Socket | null,
    head: Buffer,
  ) => {
    options.log.debug(`${req.method} ${req.url}`);
    const url = new URL(req.url ?? '/', 'http://corrald');
    let path = url.pathname;
    let version = API_VERSION;
    const m = VERSION_PREFIX.exec(path);
    let call: Call | null = null;
    let hijacked: Duplex | null = null;
    const fail = (status: number, message: string, extra: Record<string, string> = {}) => {
      options.log.debug(`${req.method} ${req.url}: ${status} ${message}`);
      if (res) {
        if (res.headersSent) {
          res.destroy();
          return;
        }
        const body = Buffer.from(JSON.stringify({ message }));
        res.writeHead(status, {
          'Content-Type': 'application/json',
          'Content-Length': body.length,
          'Api-Version': API_VERSION,
          ...extra,
        });
        res.end(body);
      } else if (socket && !hijacked && !socket.destroyed) {
        const body = JSON.stringify({ message });
        const more = Object.entries(extra)
          .map(([k, v]) => `${k}: ${v}\r\n`)
          .join('');
        socket.end(
          `HTTP/1.1 ${status} Error\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${more}Connection: close\r\n\r\n${body}`,
        );
      } else hijacked?.destroy();
    };
    try {
      if (m) {
        version = m[1];
        path = m[2];
        if (compareVersions(version, MIN_API_VERSION) < 0)
          return fail(
            400,
            `client version ${version} is too old. Minimum supported API version is ${MIN_API_VERSION}, please upgrade your client to a newer version`,
          );
        if (compareVersions(version, API_VERSION) > 0)
          return fail(
            400,
            `client version ${version} is too new. Maximum supported API version is ${API_VERSION}`,
          );
      }
      const method = req.method ?? 'GET';
      let found: { handler: Handler; params: string[] } | null = null;
      let pathKnown = false;
      for (const [rm, re, handler] of routes) {
        const pm = re.exec(path);
        if (!pm) continue;
        pathKnown = true;
        if (rm === method || (rm === 'GET' && method === 'HEAD' && path === '/_ping')) {
          found = { handler, params: pm.slice(1).map((p) => decodeURIComponent(p)) };
          break;
        }
      }
      if (!found) return fail(pathKnown ? 405 : 404, pathKnown ? 'method not allowed' : 'page not found');
      res?.setHeader('Api-Version', API_VERSION);
      res?.setHeader('Server', `corrald (linux)`);
      let bodyRead: Promise<Buffer> | null = null;
      call = {
        req,
        res,
        method,
        path,
        params: found.params,
        query: url.searchParams,
        version,
        body: () => {
          bodyRead ??= socket
            ? readUpgradeBody(socket, head, Number(req.headers['content-length'] ?? 0) || 0)
            : readAll(req);
          return bodyRead;
        },
        hijack(contentType) {
          if (res) {
            hijacked = streamResponse(req, res, contentType);
            return hijacked;
          }
          const s = socket!;
          s.write(
            `HTTP/1.1 101 UPGRADED\r\nContent-Type: ${contentType}\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nApi-Version: ${API_VERSION}\r\n\r\n`,
          );
          if (!bodyRead && head.length) s.unshift(head);
          // Left paused: the client's input waits for whoever binds the stream (a start may
          // come after the attach), then flows.
          hijacked = s;
          return s;
        },
      };
      await found.handler(call, state);
    } catch (e) {
      const { status, message } = errorStatus(e);
      if (status === 500) options.log.error(`${req.method} ${req.url}: ${(e as Error)?.stack ?? e}`);
      fail(status, message, errorHeaders(e));
    }
  };
  server.on('request', (req, res) => {
    dispatch(req, res, null, Buffer.alloc(0)).catch((e) => options.log.error(String(e)));
  });
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    socket.on('error', () => {});
    socket.pause();
    dispatch(req, null, socket, head).catch((e) => options.log.error(String(e)));
  });
  server.on('clientError', (_e, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    else socket.destroy();
  });
  return server;
}
