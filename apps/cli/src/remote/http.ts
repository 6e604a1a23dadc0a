// The HTTP half of remote mode: requests to corrald on its unix socket (wire.ts, no client
// library), Docker's error bodies mapped back to the engine's error kinds, and hijacked
// connections (attach, exec start) as sockets.
import type { Socket } from 'node:net';
import { Readable } from 'node:stream';
import { EngineError, type ErrorKind, repairAdvice } from '@corral/engine';
import { RemoteUnsupported } from '../backend.js';
import { send, type WireHeaders, type WireResponse } from './wire.js';

type Query = Record<string, string | number | boolean | undefined | string[]>;

export interface RequestOptions {
  query?: Query;
  /** A JSON value, or a stream sent as it is (a tar). */
  body?: unknown;
  headers?: Record<string, string>;
}

const KINDS: ErrorKind[] = [
  'NotFound',
  'Conflict',
  'InvalidArgument',
  'NotModified',
  'Forbidden',
  'Unavailable',
  'CannotStart',
  'NotExecutable',
  'CommandNotFound',
];

/** The kind of an error status when corrald did not say (Docker's statuses, httpStatus reversed). */
function kindOfStatus(status: number): ErrorKind {
  return (
    (
      {
        404: 'NotFound',
        409: 'Conflict',
        400: 'InvalidArgument',
        304: 'NotModified',
        403: 'Forbidden',
      } as const
    )[status as 404] ?? 'Unavailable'
  );
}

/** `unix:///path` as a socket path; any other form is refused (corrald listens on unix sockets). */
export function socketOf(host: string): string {
  const m = /^unix:\/\/(\/.*)$/.exec(host);
  if (!m) throw new EngineError('InvalidArgument', `invalid --host ${host}: unix:///PATH (corrald's -H)`);
  return m[1];
}

function queryString(q: Query = {}): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) {
    if (v === undefined) continue;
    if (Array.isArray(v)) for (const x of v) p.append(k, x);
    else p.set(k, typeof v === 'boolean' ? (v ? '1' : '0') : String(v));
  }
  const s = p.toString();
  return s ? `?${s}` : '';
}

/** A whole body as text. */
export function readText(res: Readable): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    res.setEncoding('utf8');
    res.on('data', (d: string) => {
      text += d;
    });
    res.on('end', () => resolve(text));
    res.on('error', reject);
  });
}

/**
 * corrald's error answer as the error the engine threw there: the kind from its
 * X-Corral-Error-Kind header (else from the status), the message from Docker's body. An
 * endpoint corrald does not have (404 `page not found`) is a command remote mode cannot do.
 */
export function errorOf(status: number, headers: WireHeaders, body: string, what: string): Error {
  let message = body.trim();
  try {
    message = (JSON.parse(body) as { message?: string }).message ?? message;
  } catch {
    // not JSON: the text as it is
  }
  const header = headers['x-corral-error-kind'];
  if (!header && status === 404 && message === 'page not found')
    return new RemoteUnsupported(what, 'corrald does not serve this endpoint');
  const kind = KINDS.includes(header as ErrorKind) ? (header as ErrorKind) : kindOfStatus(status);
  const registry = headers['x-corral-error-registry'];
  const repair = headers['x-corral-error-repair'] === 'system-check' ? ('system-check' as const) : undefined;
  if (repair) {
    // corrald words the repair for API clients; the CLI words it as its own command.
    const advice = repairAdvice(new EngineError(kind, '', { repair }));
    if (advice && message.endsWith(`: ${advice}`)) message = message.slice(0, -advice.length - 2);
  }
  return new EngineError(kind, message || `corrald answered ${status}`, {
    registry: typeof registry === 'string' ? registry : undefined,
    repair,
  });
}

/** One connection's worth of requests to corrald at `host` (`unix:///path`). */
export class Client {
  readonly socketPath: string;

  constructor(
    readonly host: string,
    /** What the user asked for (`corral logs`), named when corrald lacks the endpoint. */
    readonly command: string,
  ) {
    this.socketPath = socketOf(host);
  }

  #unreachable(e: NodeJS.ErrnoException): Error {
    return new EngineError(
      'Unavailable',
      `Cannot connect to corrald at ${this.host}: ${e.code ?? e.message}. Is corrald running?`,
    );
  }

  #send(method: string, path: string, o: RequestOptions, upgrade: boolean) {
    const stream = o.body instanceof Readable ? o.body : undefined;
    const data = o.body === undefined || stream ? undefined : Buffer.from(JSON.stringify(o.body));
    return send(this.socketPath, {
      method,
      path: `${path}${queryString(o.query)}`,
      headers: {
        ...(data ? { 'Content-Type': 'application/json', 'Content-Length': data.length } : {}),
        ...(stream ? { 'Content-Type': 'application/x-tar', 'Transfer-Encoding': 'chunked' } : {}),
        ...(upgrade ? { Connection: 'Upgrade', Upgrade: 'tcp' } : {}),
        ...(!data && !stream ? { 'Content-Length': 0 } : {}),
        ...o.headers,
      },
      body: stream ?? data,
      upgrade,
    }).catch((e: NodeJS.ErrnoException) => {
      throw this.#unreachable(e);
    });
  }

  /** A request whose answer is a success (its body unread), or the error corrald answered. */
  async request(method: string, path: string, o: RequestOptions = {}): Promise<WireResponse> {
    const answer = await this.#send(method, path, o, false);
    if (answer.kind === 'upgrade') {
      answer.socket.destroy();
      throw new EngineError('Unavailable', `corrald upgraded ${path}, which was not asked for`);
    }
    const res = answer.res;
    if (res.statusCode < 400) return res;
    throw errorOf(res.statusCode, res.headers, await readText(res), this.command);
  }

  /** A request's JSON answer (undefined for an empty body: 204, 304). */
  async json<T = unknown>(method: string, path: string, o: RequestOptions = {}): Promise<T> {
    const res = await this.request(method, path, o);
    const text = await readText(res);
    return (text ? JSON.parse(text) : undefined) as T;
  }

  /** An answer that streams JSON objects, one a line (pull, push, load, events). */
  async *jsonLines<T = Record<string, unknown>>(
    method: string,
    path: string,
    o: RequestOptions & { signal?: AbortSignal } = {},
  ): AsyncGenerator<T> {
    const res = await this.request(method, path, o);
    const stop = () => res.destroy();
    o.signal?.addEventListener('abort', stop, { once: true });
    let buf = '';
    try {
      res.setEncoding('utf8');
      for await (const chunk of res as AsyncIterable<string>) {
        buf += chunk;
        let nl = buf.indexOf('\n');
        while (nl >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (line) yield JSON.parse(line) as T;
          nl = buf.indexOf('\n');
        }
      }
    } catch (e) {
      if (!o.signal?.aborted) throw e;
    } finally {
      o.signal?.removeEventListener('abort', stop);
    }
    if (buf.trim() && !o.signal?.aborted) yield JSON.parse(buf) as T;
  }

  /**
   * Takes a connection over (`Upgrade: tcp`) for a program's streams: resolves with the socket
   * and its content type (raw with a TTY, multiplexed frames without) once corrald has agreed.
   */
  async hijack(path: string, o: RequestOptions = {}): Promise<{ socket: Socket; raw: boolean }> {
    const answer = await this.#send('POST', path, o, true);
    if (answer.kind === 'upgrade')
      return { socket: answer.socket, raw: String(answer.headers['content-type']).includes('raw-stream') };
    const { res } = answer;
    const text = await readText(res);
    throw res.statusCode >= 400
      ? errorOf(res.statusCode, res.headers, text, this.command)
      : new EngineError('Unavailable', `corrald did not upgrade ${path} (${res.statusCode})`);
  }
}
