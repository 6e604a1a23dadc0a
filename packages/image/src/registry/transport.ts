import type { Readable } from 'node:stream';
import type { SecureContext } from 'node:tls';
import { familiarName, formatReference, type Reference } from '../store/reference.js';
import { type Challenge, parseChallenge } from './auth.js';
import type { Authorizer } from './authorizer.js';
import { RegistryError } from './errors.js';
import { hostname, isLoopbackHost, registryApiHost } from './hosts.js';
import { discard, type HttpResponse, headerValue, httpRequest, networkError, readBody } from './http.js';

/** What every request of a client shares. */
export interface HttpSettings {
  userAgent: string;
  /** Idle time after which a request fails, in ms. */
  timeoutMs: number;
  /** True when the registry (or a token service's host) may be reached over plain HTTP. */
  isInsecure(host: string): boolean;
  /** The TLS context for verified connections, when not Node's default (an extra CA file). */
  secureContext?(): SecureContext;
}

/** What the transport learned about a registry: where its API answers and how it authenticates. */
export interface HostState {
  base: URL;
  insecureTls: boolean;
  challenge: Challenge | undefined;
}

/** One API call's repository and purpose: the token scope it needs and the words of its errors. */
export interface Context {
  registry: string;
  repository: string;
  action: 'pull' | 'push';
  what: string;
}

/** The token scopes a request of `ctx` needs. */
export function scopesFor(ctx: Context, extra: string[] = []): string[] {
  return [`repository:${ctx.repository}:${ctx.action === 'push' ? 'pull,push' : 'pull'}`, ...extra];
}

/** `busybox:latest`, `localhost:5000/app:1`. */
export function familiar(ref: Reference): string {
  return familiarName(formatReference(ref));
}

/** Plain HTTP is allowed for loopback registries and for those named insecure. */
export function insecureMatcher(registries: string[] = []): (host: string) => boolean {
  const insecure = new Set(registries.map((h) => h.toLowerCase()));
  return (registry) => {
    const r = registry.toLowerCase();
    return isLoopbackHost(r) || insecure.has(r) || insecure.has(hostname(r));
  };
}

/** A registry's probe and the requests that wait on it. */
interface HostProbe {
  state: Promise<HostState>;
  abort: AbortController;
  waiting: number;
  settled: boolean;
}

/** One caller's wait on a shared probe, ended early by its own signal. */
function waitForProbe(probe: HostProbe, registry: string, signal?: AbortSignal): Promise<HostState> {
  if (!signal) {
    probe.waiting = Number.POSITIVE_INFINITY; // a waiter that cannot leave: the probe runs its course
    return probe.state;
  }
  const aborted = () => networkError(registry, Object.assign(new Error('aborted'), { name: 'AbortError' }));
  if (signal.aborted) return Promise.reject(aborted());
  probe.waiting++;
  return new Promise((resolve, reject) => {
    let left = false;
    const leave = () => {
      if (left) return;
      left = true;
      signal.removeEventListener('abort', onAbort);
      probe.waiting--;
    };
    const onAbort = () => {
      leave();
      if (probe.waiting === 0 && !probe.settled) probe.abort.abort();
      reject(aborted());
    };
    signal.addEventListener('abort', onAbort, { once: true });
    probe.state.then(
      (v) => {
        leave();
        resolve(v);
      },
      (e) => {
        leave();
        reject(e);
      },
    );
  });
}

export interface RequestOptions {
  headers?: Record<string, string>;
  body?: Buffer | (() => Readable);
  signal?: AbortSignal;
  extraScopes?: string[];
}

/**
 * The transport (containerd's dockerBase): learns once per registry which scheme answers and
 * which auth it asks for, sends authorised requests (one retry after a 401 with the new
 * challenge), and turns unexpected answers into errors that say what to do.
 */
export class Transport {
  private readonly hosts = new Map<string, HostProbe>();

  constructor(
    readonly settings: HttpSettings,
    private readonly authorizer: Authorizer,
  ) {}

  /** Forgets what was learned about a registry (a login probes it afresh). */
  forget(registry: string): void {
    this.hosts.delete(registry);
  }

  /**
   * Learns once per registry which scheme works and which auth it wants (GET /v2/). The probe
   * is shared by every request that waits on it: `signal` ends this caller's wait, and the
   * probe itself is aborted once every waiter's signal has fired (an interrupted pull from a
   * registry that never answers ends at once, without a socket left to hold the process).
   */
  host(registry: string, signal?: AbortSignal): Promise<HostState> {
    let probe = this.hosts.get(registry);
    if (!probe) {
      const abort = new AbortController();
      const made: HostProbe = {
        state: this.probe(registry, abort.signal),
        abort,
        waiting: 0,
        settled: false,
      };
      made.state.then(
        () => (made.settled = true),
        () => {
          made.settled = true;
          if (this.hosts.get(registry) === made) this.hosts.delete(registry);
        },
      );
      this.hosts.set(registry, made);
      probe = made;
    }
    return waitForProbe(probe, registry, signal);
  }

  private async probe(registry: string, signal: AbortSignal): Promise<HostState> {
    const apiHost = registryApiHost(registry);
    const insecure = this.settings.isInsecure(registry);
    // Like Docker: HTTPS first; plain HTTP only for loopback and registries named insecure.
    const schemes = insecure ? ['https', 'http'] : ['https'];
    let lastError: unknown;
    for (const scheme of schemes) {
      const base = new URL(`${scheme}://${apiHost}/`);
      const state: HostState = { base, insecureTls: insecure, challenge: undefined };
      let res: HttpResponse;
      try {
        res = await this.send(state, new URL('/v2/', base), 'GET', {}, undefined, signal);
      } catch (e) {
        if (signal.aborted) throw networkError(registry, e);
        lastError = e;
        continue;
      }
      discard(res);
      if (res.status === 200) return state;
      if (res.status === 401) {
        state.challenge = parseChallenge(headerValue(res.headers['www-authenticate']));
        if (!state.challenge) {
          throw new RegistryError(
            'UNAUTHORIZED',
            `${registry} asks for authentication of a kind corral does not know`,
            {
              host: registry,
              status: 401,
            },
          );
        }
        return state;
      }
      if (scheme === 'https' && insecure && res.status === 400) {
        lastError = new RegistryError('HTTP', `${registry} answered HTTPS with 400`, { host: registry });
        continue;
      }
      throw new RegistryError(
        'HTTP',
        `${registry} is not a registry (GET ${base.origin}/v2/ answered ${res.status}); check the registry name`,
        { host: registry, status: res.status },
      );
    }
    throw networkError(registry, lastError);
  }

  withUserAgent(headers: Record<string, string>): Record<string, string> {
    return { 'User-Agent': this.settings.userAgent, ...headers };
  }

  send(
    state: HostState,
    url: URL,
    method: string,
    headers: Record<string, string>,
    body?: Buffer | (() => Readable),
    signal?: AbortSignal,
  ): Promise<HttpResponse> {
    return httpRequest(url, {
      method,
      headers: this.withUserAgent(headers),
      body,
      signal,
      insecureTls: state.insecureTls,
      secureContext: this.settings.secureContext?.(),
      timeoutMs: this.settings.timeoutMs,
    });
  }

  /** One authorised API request; a 401 gets one retry with a fresh token or the new challenge. */
  async request(
    ctx: Context,
    method: string,
    pathOrUrl: string,
    opts: {
      headers?: Record<string, string>;
      body?: Buffer | (() => Readable);
      signal?: AbortSignal;
      extraScopes?: string[];
    } = {},
  ): Promise<HttpResponse> {
    const state = await this.host(ctx.registry, opts.signal);
    const url = new URL(pathOrUrl, state.base);
    if (url.origin !== state.base.origin && url.protocol === 'http:' && !this.settings.isInsecure(url.host)) {
      throw new RegistryError(
        'HTTP',
        `${ctx.registry} sent an upload location over plain HTTP (${url.origin}); refused`,
        {
          host: ctx.registry,
        },
      );
    }
    const scopes = scopesFor(ctx, opts.extraScopes);
    for (let attempt = 0; ; attempt++) {
      const headers = { ...(opts.headers ?? {}) };
      const auth =
        url.origin === state.base.origin
          ? await this.authorizer.authorization(ctx.registry, state.challenge, scopes)
          : undefined;
      if (auth) headers['Authorization'] = auth;
      const res = await this.send(state, url, method, headers, opts.body, opts.signal);
      if (res.status !== 401 || attempt > 0) return res;
      const challenge = parseChallenge(headerValue(res.headers['www-authenticate']));
      if (!challenge) return res;
      discard(res);
      state.challenge = challenge;
      this.authorizer.dropToken(ctx.registry, scopes);
    }
  }

  /** Turns an unexpected answer into an error that says what to do. */
  async failure(
    res: HttpResponse,
    ctx: Context,
    kind: 'manifest' | 'blob' | 'upload',
  ): Promise<RegistryError> {
    const raw = await readBody(res, 64 * 1024).catch(() => Buffer.alloc(0));
    let codes: { code?: string; message?: string }[] = [];
    try {
      codes =
        (JSON.parse(raw.toString('utf8')) as { errors?: { code?: string; message?: string }[] }).errors ?? [];
    } catch {
      // Not every answer has a JSON body (HEAD never does).
    }
    const detail = codes.map((c) => [c.code, c.message].filter(Boolean).join(': ')).join('; ');
    const suffix = detail ? ` (${detail})` : '';
    const opts = { host: ctx.registry, status: res.status };
    const has = (code: string) => codes.some((c) => c.code === code);
    const creds = await this.authorizer.storedCredentials(ctx.registry).catch(() => undefined);
    if (res.status === 401) {
      return new RegistryError(
        'UNAUTHORIZED',
        creds
          ? `${ctx.registry} refused the stored credentials of ${creds.username} to ${ctx.action} ${ctx.what}${suffix}; log in to ${ctx.registry} again`
          : `authentication required to ${ctx.action} ${ctx.what}${suffix}; log in to ${ctx.registry} first`,
        opts,
      );
    }
    if (res.status === 403) {
      return new RegistryError(
        'DENIED',
        `access denied: ${ctx.registry} does not let ${creds ? creds.username : 'anonymous users'} ${ctx.action} ${ctx.what}${suffix}; log in to ${ctx.registry} with an account that may`,
        opts,
      );
    }
    if (res.status === 404 || has('MANIFEST_UNKNOWN') || has('NAME_UNKNOWN') || has('BLOB_UNKNOWN')) {
      if (has('NAME_UNKNOWN')) {
        return new RegistryError(
          'NAME_UNKNOWN',
          `repository ${ctx.repository} is not known to ${ctx.registry} (looking for ${ctx.what}); check the name`,
          opts,
        );
      }
      if (kind === 'manifest') {
        return new RegistryError(
          'MANIFEST_UNKNOWN',
          `manifest unknown: ${ctx.what} was not found on ${ctx.registry}${suffix}; check the name and tag`,
          opts,
        );
      }
      return new RegistryError('BLOB_UNKNOWN', `${ctx.what} was not found${suffix}`, opts);
    }
    if (has('DIGEST_INVALID')) {
      return new RegistryError(
        'DIGEST_MISMATCH',
        `${ctx.registry} refused ${ctx.what}: digest invalid${suffix}`,
        opts,
      );
    }
    return new RegistryError(
      'HTTP',
      `${ctx.registry}: ${res.url.pathname} answered ${res.status} while trying to ${ctx.action} ${ctx.what}${suffix}`,
      opts,
    );
  }
}
