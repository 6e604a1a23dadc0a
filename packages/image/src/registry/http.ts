import http from 'node:http';
import https from 'node:https';
import type { Readable, TransformCallback } from 'node:stream';
import type { SecureContext } from 'node:tls';
import { type DigestAlgorithm, HashingStream } from '../store/hashing.js';
import { DigestMismatchError, RegistryError } from './errors.js';
import { isValidDigest } from './hosts.js';

export interface HttpResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: http.IncomingMessage;
  /** The URL that answered, after redirects. */
  url: URL;
}

export interface HttpRequestOptions {
  method: string;
  headers?: Record<string, string>;
  /** A replayable body, or a function that makes a fresh stream for each attempt. */
  body?: Buffer | (() => Readable);
  /** TLS: accept any certificate (only for registries named insecure). */
  insecureTls?: boolean;
  /** TLS: the CAs to trust, when not Node's default ones (tls-trust.ts). */
  secureContext?: SecureContext;
  signal?: AbortSignal;
  /** Idle socket time after which the request fails. */
  timeoutMs?: number;
}

/** Statuses that send a GET or HEAD elsewhere. */
export const REDIRECTS = new Set([301, 302, 303, 307, 308]);
/** Redirects followed before giving up. */
export const MAX_REDIRECTS = 10;

/**
 * The next hop of a redirect: the URL `location` names, and the headers to send there
 * (without Authorization when the redirect leaves the origin).
 */
export function redirectTarget(
  from: URL,
  location: string,
  headers: Record<string, string>,
): { url: URL; headers: Record<string, string> } {
  const url = new URL(location, from);
  if (url.origin === from.origin) return { url, headers };
  const { authorization: _drop, Authorization: _Drop, ...rest } = headers;
  return { url, headers: rest };
}

export function tooManyRedirects(url: URL): RegistryError {
  return new RegistryError('HTTP', `too many redirects from ${url.host} for ${url.pathname}`, {
    host: url.host,
  });
}

/** The error for a socket idle for `ms`, in the form networkError names. */
export function timeoutError(ms: number): Error {
  return Object.assign(new Error(`no answer for ${Math.round(ms / 1000)} s`), { code: 'ETIMEDOUT' });
}
// Made on the first request: a process that never talks to a registry never loads node:http.
let agentsMade: { http: http.Agent; https: https.Agent; httpsInsecure: https.Agent } | undefined;
const agents = () =>
  (agentsMade ??= {
    http: new http.Agent({ keepAlive: true, maxSockets: 16 }),
    https: new https.Agent({ keepAlive: true, maxSockets: 16 }),
    httpsInsecure: new https.Agent({ keepAlive: true, maxSockets: 16, rejectUnauthorized: false }),
  });
/** One agent per TLS context of its own (one per extra CA file and process). */
const contextAgents = new WeakMap<SecureContext, https.Agent>();
function contextAgent(secureContext: SecureContext): https.Agent {
  let a = contextAgents.get(secureContext);
  if (!a) {
    a = new https.Agent({ keepAlive: true, maxSockets: 16, secureContext });
    contextAgents.set(secureContext, a);
  }
  return a;
}

/** Network failures as a RegistryError that names the host and says what to check. */
export function networkError(host: string, e: unknown): RegistryError {
  if (e instanceof RegistryError) return e;
  const err = e as NodeJS.ErrnoException;
  if (err?.name === 'AbortError')
    return new RegistryError('NETWORK', `request to ${host} was aborted`, { host, cause: e });
  const code = err?.code ? `${err.code}: ` : '';
  const hint =
    err?.code === 'ENOTFOUND' || err?.code === 'EAI_AGAIN'
      ? 'check the registry name and your DNS'
      : err?.code === 'ECONNREFUSED'
        ? 'is the registry running and listening on that port?'
        : 'check the network and the registry';
  return new RegistryError(
    'NETWORK',
    `cannot reach registry ${host}: ${code}${err?.message ?? String(e)}; ${hint}`,
    {
      host,
      cause: e,
    },
  );
}

/**
 * One HTTP exchange with redirects followed for GET and HEAD (blob downloads are often sent
 * to a storage host); the Authorization header is dropped when a redirect leaves the origin.
 */
export async function httpRequest(url: URL, opts: HttpRequestOptions): Promise<HttpResponse> {
  let current = url;
  let headers = { ...(opts.headers ?? {}) };
  for (let hop = 0; hop < MAX_REDIRECTS; hop++) {
    const res = await once(current, opts, headers);
    if (
      !REDIRECTS.has(res.status) ||
      !res.headers.location ||
      (opts.method !== 'GET' && opts.method !== 'HEAD')
    ) {
      return res;
    }
    res.body.resume();
    ({ url: current, headers } = redirectTarget(current, res.headers.location, headers));
  }
  throw tooManyRedirects(url);
}

function once(url: URL, opts: HttpRequestOptions, headers: Record<string, string>): Promise<HttpResponse> {
  const isHttps = url.protocol === 'https:';
  const a = agents();
  const agent = !isHttps
    ? a.http
    : opts.insecureTls
      ? a.httpsInsecure
      : opts.secureContext
        ? contextAgent(opts.secureContext)
        : a.https;
  const mod = isHttps ? https : http;
  const body = typeof opts.body === 'function' ? opts.body() : opts.body;
  const allHeaders = { ...headers };
  if (Buffer.isBuffer(body)) allHeaders['Content-Length'] = String(body.length);
  return new Promise<HttpResponse>((resolve, reject) => {
    const req = mod.request(
      url,
      { method: opts.method, headers: allHeaders, agent, signal: opts.signal },
      (res) => {
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res, url });
      },
    );
    req.setTimeout(opts.timeoutMs ?? 60_000, () => req.destroy(timeoutError(opts.timeoutMs ?? 60_000)));
    req.on('error', (e) => reject(networkError(url.host, e)));
    if (body === undefined) req.end();
    else if (Buffer.isBuffer(body)) req.end(body);
    else {
      body.on('error', (e) => req.destroy(e));
      body.pipe(req);
    }
  });
}

/** Reads a whole (small) body, refusing more than `limit` bytes. */
export async function readBody(res: HttpResponse, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of res.body as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > limit) {
      res.body.destroy();
      throw new RegistryError(
        'HTTP',
        `answer from ${res.url.host} for ${res.url.pathname} is larger than ${limit} bytes`,
        {
          host: res.url.host,
        },
      );
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** A header's value; several are joined as one. */
export function headerValue(h: string | string[] | undefined): string | undefined {
  return Array.isArray(h) ? h.join(', ') : h;
}

/** The Docker-Content-Digest a registry answered, when it is a valid digest. */
export function headerDigest(res: HttpResponse): string | undefined {
  const d = headerValue(res.headers['docker-content-digest'])?.trim();
  return d && isValidDigest(d) ? d : undefined;
}

/** Throws away a body so the socket can be reused. */
export function discard(res: HttpResponse): void {
  res.body.resume();
}

/**
 * Passes bytes through while hashing them; fails the stream when more bytes than expected
 * arrive, or at the end when the digest or size is not the expected one. With `hashing`
 * false only the size is checked (for a sink that hashes what it stores anyway).
 */
export class DigestVerifier extends HashingStream {
  constructor(
    private readonly expectedDigest: string,
    private readonly expectedSize: number | undefined,
    private readonly what: string,
    onBytes?: (total: number) => void,
    hashing = true,
  ) {
    super(digestAlgorithm(expectedDigest, what), { hashing, onBytes });
  }

  override _transform(chunk: Buffer, enc: BufferEncoding, done: TransformCallback): void {
    if (this.expectedSize !== undefined && this.size + chunk.length > this.expectedSize) {
      done(
        new RegistryError(
          'SIZE_MISMATCH',
          `${this.what}: more than the expected ${this.expectedSize} bytes; nothing was stored`,
        ),
      );
      return;
    }
    super._transform(chunk, enc, done);
  }

  override _flush(done: TransformCallback): void {
    if (this.expectedSize !== undefined && this.size !== this.expectedSize) {
      done(
        new RegistryError(
          'SIZE_MISMATCH',
          `${this.what}: expected ${this.expectedSize} bytes, got ${this.size}; nothing was stored`,
        ),
      );
      return;
    }
    if (!this.hashing) {
      done();
      return;
    }
    const actual = this.digest();
    if (actual !== this.expectedDigest) done(new DigestMismatchError(this.what, this.expectedDigest, actual));
    else done();
  }
}

/** The algorithm a digest names, when it is one a registry may use (sha256, sha512). */
function digestAlgorithm(digest: string, what: string): DigestAlgorithm {
  const algorithm = digest.split(':', 1)[0];
  if (algorithm !== 'sha256' && algorithm !== 'sha512') {
    throw new RegistryError('INVALID_MANIFEST', `${what}: unsupported digest algorithm in ${digest}`);
  }
  return algorithm;
}
