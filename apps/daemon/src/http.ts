import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { Duplex, type Readable, type Writable } from 'node:stream';
import {
  API_VERSION,
  CorralError,
  EngineError,
  httpStatus,
  MIN_API_VERSION,
  repairAdvice,
} from '@corral/engine';

/** The newest Docker Engine API version corrald implements, and the oldest it accepts (the engine's). */
export { API_VERSION, MIN_API_VERSION };

/** Largest JSON request body accepted (a create config is a few KiB). */
const MAX_JSON = 4 << 20;

/** Compares Docker API versions (`1.41` < `1.47`). */
export function compareVersions(a: string, b: string): number {
  const [am, an] = a.split('.').map(Number);
  const [bm, bn] = b.split('.').map(Number);
  return am - bm || an - bn;
}

/** One request as a route sees it. */
export interface Call {
  req: IncomingMessage;
  /** Null for a hijacked (Upgrade) request: use `hijack`. */
  res: ServerResponse | null;
  method: string;
  path: string;
  params: string[];
  query: URLSearchParams;
  /** The API version the client asked for (its /vX.Y/ prefix), else the newest. */
  version: string;
  /** The request body: read once, from the socket for a hijacked request. */
  body(): Promise<Buffer>;
  /**
   * Takes the connection over for a program's streams (attach, exec start): `101 UPGRADED`
   * when the client asked to upgrade, else a 200 whose body is the stream.
   */
  hijack(contentType: string): Duplex;
}

/** Docker's error body for a failure, with the status of its kind. */
export function errorStatus(e: unknown): { status: number; message: string } {
  if (e instanceof CorralError) {
    // A repair the error carries as data, worded for an API client (no CLI command named).
    const advice = repairAdvice(e);
    return { status: httpStatus(e.kind), message: advice ? `${e.message}: ${advice}` : e.message };
  }
  return { status: 500, message: (e as Error)?.message ?? String(e) };
}

export function bad(message: string): EngineError {
  return new EngineError('InvalidArgument', message);
}

export function sendJson(call: Call, status: number, value: unknown): void {
  const res = mustRes(call);
  const body = Buffer.from(JSON.stringify(value));
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': body.length });
  res.end(body);
}

export function sendEmpty(call: Call, status = 204): void {
  const res = mustRes(call);
  res.writeHead(status);
  res.end();
}

export function mustRes(call: Call): ServerResponse {
  if (!call.res) throw bad('this endpoint does not upgrade the connection');
  return call.res;
}

/** A JSON body, or a 400 for a malformed one; `{}` for an empty body. */
export async function jsonBody<T = Record<string, unknown>>(call: Call): Promise<T> {
  const buf = await call.body();
  if (buf.length === 0) return {} as T;
  try {
    const v = JSON.parse(buf.toString('utf8'));
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object');
    return v as T;
  } catch (e) {
    throw bad(`invalid JSON body: ${(e as Error).message}`);
  }
}

/** Reads a whole body from a stream, refusing one larger than MAX_JSON. */
export function readAll(stream: Readable, limit = MAX_JSON): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    stream.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        reject(bad(`request body larger than ${limit} bytes`));
        stream.destroy();
        return;
      }
      parts.push(c);
    });
    stream.on('end', () => resolve(Buffer.concat(parts)));
    stream.on('error', reject);
  });
}

/** Reads the first `length` bytes of an upgraded connection (the body before the stream). */
export function readUpgradeBody(socket: Socket, head: Buffer, length: number): Promise<Buffer> {
  if (length > MAX_JSON) return Promise.reject(bad('request body too large'));
  return new Promise((resolve, reject) => {
    let got = head;
    const done = () => {
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.pause();
      const rest = got.subarray(length);
      if (rest.length) socket.unshift(rest);
      resolve(got.subarray(0, length));
    };
    const onData = (c: Buffer) => {
      got = Buffer.concat([got, c]);
      if (got.length >= length) done();
    };
    const onEnd = () => reject(bad('connection closed inside the request body'));
    if (got.length >= length) {
      done();
      return;
    }
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.resume();
  });
}

/** A response whose body is a stream (the non-upgrade form of a hijack). */
export function streamResponse(req: IncomingMessage, res: ServerResponse, contentType: string): Duplex {
  res.writeHead(200, { 'Content-Type': contentType });
  res.flushHeaders();
  return Duplex.from({ readable: req, writable: res as unknown as Writable });
}

/** Docker's 8-byte multiplexed frame: stream (0 stdin, 1 stdout, 2 stderr), size, payload. */
export function frame(stream: 0 | 1 | 2, payload: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h[0] = stream;
  h.writeUInt32BE(payload.length, 4);
  return Buffer.concat([h, payload]);
}

/** A query flag as Docker reads one: 1, true, True, yes. */
export function flag(query: URLSearchParams, name: string, fallback = false): boolean {
  const v = query.get(name);
  if (v === null || v === '') return fallback;
  return ['1', 'true', 'True', 'TRUE', 'yes'].includes(v);
}

/** An integer query value, or a 400. */
export function intParam(query: URLSearchParams, name: string): number | undefined {
  const v = query.get(name);
  if (v === null || v === '') return undefined;
  if (!/^-?\d+$/.test(v)) throw bad(`invalid value for ${name}: ${v}`);
  return Number(v);
}

/** Docker's `filters` query: a JSON map of name to values (or name to {value: true}). */
export function filtersParam(query: URLSearchParams): Record<string, string[]> {
  const raw = query.get('filters');
  if (!raw) return {};
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    throw bad(`invalid filters: ${raw}`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw bad(`invalid filters: ${raw}`);
  const out: Record<string, string[]> = {};
  for (const [k, val] of Object.entries(v as Record<string, unknown>)) {
    if (Array.isArray(val)) out[k] = val.map(String);
    else if (val && typeof val === 'object') out[k] = Object.keys(val);
    else throw bad(`invalid filter ${k}`);
  }
  return out;
}

/** Headers sent and a body that streams JSON objects one after another (pull, load, events). */
export function jsonStream(call: Call): { write(v: unknown): void; end(): void; res: ServerResponse } {
  const res = mustRes(call);
  res.writeHead(200, { 'Content-Type': 'application/json' });
  res.flushHeaders();
  return {
    res,
    write: (v) => {
      if (!res.destroyed) res.write(`${JSON.stringify(v)}\n`);
    },
    end: () => res.end(),
  };
}

/** Why a request's signal aborts: one object (abort() without a reason makes a DOMException, ~3 ms here). */
const CLIENT_GONE = Object.freeze({ name: 'AbortError', message: 'the client went away' });

/** An AbortSignal that fires when the client goes away. */
export function clientGone(call: Call): AbortSignal {
  const ac = new AbortController();
  const sock = call.req.socket;
  const abort = () => ac.abort(CLIENT_GONE);
  sock.once('close', abort);
  call.res?.once('close', abort);
  return ac.signal;
}
