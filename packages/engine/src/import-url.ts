// docker import URL (dockerd's `fromSrc=URL`): the tarball is fetched over HTTP(S) and streamed
// into the import; a refused fetch fails before anything is stored, with dockerd's words.
import { get as httpGet, type IncomingMessage } from 'node:http';
import { get as httpsGet } from 'node:https';
import type { Readable } from 'node:stream';
import { EngineError } from './errors.js';

/** A tarball being fetched: its URL (after redirects), body and length (null when not said). */
export interface FetchedTarball {
  url: string;
  body: Readable;
  length: number | null;
}

const MAX_REDIRECTS = 10; // Go's http.Get, which dockerd uses
const BODY_OF_ERROR = 4096;

/** dockerd's rule: a source without a scheme is an http host and path (`host/x.tar`). */
export function importUrl(src: string): URL {
  const withScheme = src.includes('://') ? src : `http://${src}`;
  let u: URL;
  try {
    u = new URL(withScheme);
  } catch {
    throw new EngineError('InvalidArgument', `invalid import source ${JSON.stringify(src)}: not a URL`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    throw new EngineError('InvalidArgument', `unsupported protocol scheme "${u.protocol.slice(0, -1)}"`);
  return u;
}

function request(u: URL, signal?: AbortSignal): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const get = u.protocol === 'https:' ? httpsGet : httpGet;
    const req = get(u, { signal, headers: { 'User-Agent': 'corral' } }, resolve);
    req.on('error', (e: NodeJS.ErrnoException) => {
      // Go's words for a refused or unresolved fetch, as dockerd passes them on.
      const kind = e.code === 'ENOTFOUND' ? 'NotFound' : 'Unavailable';
      reject(new EngineError(kind, `Get "${u.href}": ${e.message}`));
    });
  });
}

async function errorBody(res: IncomingMessage): Promise<string> {
  let text = '';
  for await (const chunk of res) {
    if (text.length < BODY_OF_ERROR) text += (chunk as Buffer).toString('utf8');
  }
  return text.slice(0, BODY_OF_ERROR).trim();
}

/**
 * GETs `src` (following redirects) and hands over the body to read; a status of 400 or more
 * is dockerd's error (404 NotFound, 400 InvalidArgument, others Unavailable), with the body.
 */
export async function fetchTarball(src: string, signal?: AbortSignal): Promise<FetchedTarball> {
  let u = importUrl(src);
  for (let hops = 0; ; hops++) {
    const res = await request(u, signal);
    const status = res.statusCode ?? 0;
    if (status >= 300 && status < 400 && res.headers.location) {
      res.resume();
      if (hops >= MAX_REDIRECTS)
        throw new EngineError('Unavailable', `Get "${u.href}": stopped after 10 redirects`);
      u = importUrl(new URL(res.headers.location, u).href);
      continue;
    }
    if (status >= 400) {
      const body = await errorBody(res).catch(() => '');
      const msg = `failed to GET ${u.href} with status ${status} ${res.statusMessage ?? ''}: ${body}`;
      throw new EngineError(
        status === 404 ? 'NotFound' : status === 400 ? 'InvalidArgument' : 'Unavailable',
        msg,
      );
    }
    const length = Number(res.headers['content-length']);
    return { url: u.href, body: res, length: Number.isFinite(length) && length >= 0 ? length : null };
  }
}
