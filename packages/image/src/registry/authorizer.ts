import type { Challenge, Credentials, DockerCredentialStore } from './auth.js';
import { RegistryError } from './errors.js';
import { discard, httpRequest, readBody } from './http.js';
import type { HttpSettings } from './transport.js';

/**
 * The authorizer (containerd's docker.Authorizer): answers a registry's challenge with Basic
 * credentials or a Bearer token per scope set, from the token service the challenge names.
 * Tokens are cached until shortly before they expire, and a pending request for one is shared
 * by parallel callers; credentials come from the Docker config.json, read once per registry.
 */
export class Authorizer {
  /** Bearer tokens per registry and scope set; a pending request is shared by parallel callers. */
  private readonly tokens = new Map<string, { header: Promise<string>; expires: number }>();
  private readonly creds = new Map<string, Promise<Credentials | undefined>>();

  constructor(
    readonly credentials: DockerCredentialStore,
    private readonly settings: HttpSettings,
    /** Used for every registry in place of the stored credentials (one request's own). */
    private readonly given?: Credentials,
  ) {}

  /** The Authorization header for a request needing `scopes` (none without a challenge). */
  async authorization(
    registry: string,
    challenge: Challenge | undefined,
    scopes: string[],
  ): Promise<string | undefined> {
    if (!challenge) return undefined;
    const creds = await this.storedCredentials(registry);
    if (challenge.scheme === 'basic') return creds ? basic(creds) : undefined;
    // A token the client already holds for this registry: no token service asked.
    if (creds?.registryToken) return `Bearer ${creds.registryToken}`;
    const key = tokenKey(registry, scopes);
    const cached = this.tokens.get(key);
    if (cached && cached.expires > Date.now()) return cached.header;
    const entry = { header: Promise.resolve(''), expires: Number.POSITIVE_INFINITY };
    entry.header = this.fetchToken(registry, challenge, scopes, creds).then(
      (token) => {
        // Renew a little before the registry would refuse it.
        entry.expires = Date.now() + Math.max(0, token.expiresIn - 10) * 1000;
        return `Bearer ${token.token}`;
      },
      (e: unknown) => {
        if (this.tokens.get(key) === entry) this.tokens.delete(key);
        throw e;
      },
    );
    this.tokens.set(key, entry);
    return entry.header;
  }

  /** The stored credentials of a registry, read once. */
  storedCredentials(registry: string): Promise<Credentials | undefined> {
    if (this.given) return Promise.resolve(this.given);
    let c = this.creds.get(registry);
    if (!c) {
      c = this.credentials.get(registry);
      this.creds.set(registry, c);
      c.catch(() => this.creds.delete(registry));
    }
    return c;
  }

  /** Asks the token service named by a Bearer challenge for a token covering `scopes`. */
  async fetchToken(
    registry: string,
    challenge: Challenge,
    scopes: string[],
    creds: Credentials | undefined,
    /**
     * Asks for a refresh token beside the access token (docker login's `offline_token=true`):
     * the token service may hand one out, which a client keeps as its identity token.
     */
    offline = false,
  ): Promise<{ token: string; expiresIn: number; refreshToken?: string }> {
    const realm = challenge.params['realm'];
    let url: URL;
    try {
      url = new URL(realm ?? '');
    } catch {
      throw new RegistryError(
        'UNAUTHORIZED',
        `${registry} names no valid token service (realm "${realm ?? ''}")`,
        {
          host: registry,
        },
      );
    }
    if (url.protocol === 'http:' && !this.settings.isInsecure(url.host)) {
      throw new RegistryError(
        'UNAUTHORIZED',
        `${registry} sends token requests to ${url.origin} over plain HTTP; refused (only loopback or insecure registries may use HTTP)`,
        { host: registry },
      );
    }
    const headers: Record<string, string> = {
      'User-Agent': this.settings.userAgent,
      Accept: 'application/json',
    };
    let body: Buffer | undefined;
    if (creds?.identityToken) {
      // OAuth2: trade the refresh token for an access token (POST form), as docker does.
      const form = new URLSearchParams({
        grant_type: 'refresh_token',
        refresh_token: creds.identityToken,
        client_id: this.settings.userAgent,
      });
      if (challenge.params['service']) form.set('service', challenge.params['service']);
      if (scopes.length) form.set('scope', scopes.join(' '));
      body = Buffer.from(form.toString());
      headers['Content-Type'] = 'application/x-www-form-urlencoded';
    } else {
      if (challenge.params['service']) url.searchParams.set('service', challenge.params['service']);
      for (const s of scopes) url.searchParams.append('scope', s);
      if (offline) {
        url.searchParams.set('offline_token', 'true');
        url.searchParams.set('client_id', this.settings.userAgent);
      }
      if (creds) {
        url.searchParams.set('account', creds.username);
        headers['Authorization'] = basic(creds);
      }
    }
    const res = await httpRequest(url, {
      method: body ? 'POST' : 'GET',
      headers,
      body,
      insecureTls: this.settings.isInsecure(url.host),
      secureContext: this.settings.secureContext?.(),
      timeoutMs: this.settings.timeoutMs,
    });
    if (res.status === 401 || res.status === 403) {
      discard(res);
      throw new RegistryError(
        'UNAUTHORIZED',
        creds
          ? `the token service of ${registry} refused the credentials for ${creds.username}; log in to ${registry} again`
          : `${registry} wants credentials; log in to ${registry} first`,
        { host: registry, status: res.status },
      );
    }
    if (res.status !== 200) {
      const text = await readBody(res, 64 * 1024).catch(() => Buffer.alloc(0));
      throw new RegistryError(
        'HTTP',
        `the token service of ${registry} (${url.origin}) answered ${res.status}: ${text.toString('utf8').slice(0, 200)}`,
        { host: registry, status: res.status },
      );
    }
    let answer: { token?: string; access_token?: string; expires_in?: number; refresh_token?: string };
    try {
      answer = JSON.parse((await readBody(res, 1024 * 1024)).toString('utf8'));
    } catch {
      throw new RegistryError(
        'UNAUTHORIZED',
        `the token service of ${registry} (${url.origin}) answered with no JSON`,
        {
          host: registry,
        },
      );
    }
    const token = answer?.token || answer?.access_token;
    if (!token) {
      throw new RegistryError('UNAUTHORIZED', `the token service of ${registry} answered without a token`, {
        host: registry,
      });
    }
    return {
      token,
      expiresIn: typeof answer.expires_in === 'number' && answer.expires_in > 0 ? answer.expires_in : 60,
      ...(typeof answer.refresh_token === 'string' && answer.refresh_token
        ? { refreshToken: answer.refresh_token }
        : {}),
    };
  }

  /** Forgets the cached token for `scopes` (the registry refused it). */
  dropToken(registry: string, scopes: string[]): void {
    this.tokens.delete(tokenKey(registry, scopes));
  }

  /** Uses `creds` for `registry` from now on (after a login), with fresh tokens. */
  remember(registry: string, creds: Credentials): void {
    this.creds.set(registry, Promise.resolve(creds));
    this.dropTokens(registry);
  }

  /** Forgets a registry's credentials and tokens (a logout). */
  forget(registry: string): void {
    this.creds.delete(registry);
    this.dropTokens(registry);
  }

  private dropTokens(registry: string): void {
    for (const key of this.tokens.keys()) if (key.startsWith(`${registry} `)) this.tokens.delete(key);
  }
}

export function basic(c: Credentials): string {
  return `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;
}

function tokenKey(registry: string, scopes: string[]): string {
  return `${registry} ${[...scopes].sort().join(' ')}`;
}
