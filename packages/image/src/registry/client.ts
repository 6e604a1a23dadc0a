import type { Readable } from 'node:stream';
import type { Reference } from '../store/reference.js';
import type { Descriptor, Platform } from '../store/types.js';
import { type Credentials, DockerCredentialStore } from './auth.js';
import { Authorizer, basic } from './authorizer.js';
import { RegistryError } from './errors.js';
import { Fetcher } from './fetcher.js';
import { discard } from './http.js';
import type { ProgressEvent } from './progress.js';
import { Pusher } from './pusher.js';
import { Resolver } from './resolver.js';
import { extraCaContext } from './tls-trust.js';
import { insecureMatcher, Transport } from './transport.js';
import type {
  BlobProvider,
  BlobSink,
  FetchedManifest,
  PullOptions,
  PullResult,
  PushImage,
  PushOptions,
  PushResult,
  RegistryClientOptions,
  ResolvedImage,
} from './types.js';

export type * from './types.js';

/**
 * A client for registries that speak the OCI distribution API (Docker Hub, the CNCF
 * distribution server, ...): ping, login, manifests, blobs, pull into a BlobSink and push
 * from a BlobSource, with anonymous, basic and bearer-token auth.
 *
 * It is cut along containerd's remotes seams: the transport (transport.ts: hosts, schemes,
 * authorised requests, errors), the authorizer (authorizer.ts: challenges, credentials,
 * tokens), the resolver (resolver.ts: reference to manifest), the fetcher (fetcher.ts: blobs
 * and pulls) and the pusher (pusher.ts: uploads and manifests). This class only wires them.
 */
export class RegistryClient {
  readonly credentials: DockerCredentialStore;
  private readonly transport: Transport;
  private readonly authorizer: Authorizer;
  private readonly resolver: Resolver;
  private readonly fetcher: Fetcher;
  private readonly pusher: Pusher;

  constructor(opts: RegistryClientOptions = {}) {
    this.credentials = new DockerCredentialStore(opts.configPath);
    const settings = {
      userAgent: opts.userAgent ?? 'corral',
      timeoutMs: opts.timeoutMs ?? 60_000,
      isInsecure: insecureMatcher(opts.insecureRegistries),
      secureContext: opts.extraCaFile ? () => extraCaContext(opts.extraCaFile!) : undefined,
    };
    this.authorizer = new Authorizer(this.credentials, settings, opts.credentials);
    this.transport = new Transport(settings, this.authorizer);
    this.resolver = new Resolver(this.transport);
    this.fetcher = new Fetcher(this.transport, this.authorizer, this.resolver);
    this.pusher = new Pusher(this.transport);
  }

  /** True when the registry may be reached over plain HTTP: loopback, or named insecure. */
  isInsecure(registry: string): boolean {
    return this.transport.settings.isInsecure(registry);
  }

  /** Checks that a registry answers the /v2/ API and says which auth it asks for. */
  async ping(registry: string): Promise<{ url: string; auth: 'none' | 'basic' | 'bearer' }> {
    const state = await this.transport.host(registry);
    return { url: state.base.href, auth: state.challenge?.scheme ?? 'none' };
  }

  /**
   * Checks the credentials against the registry (Basic on /v2/, or a token request for
   * Bearer) and, when they work, stores them in config.json.
   */
  async login(registry: string, username: string, password: string): Promise<void> {
    await this.checkLogin(registry, username, password);
    const creds = { username, password };
    await this.credentials.set(registry, creds);
    this.authorizer.remember(registry, creds);
  }

  /**
   * Checks the credentials against the registry as `login` does, storing nothing (a daemon's
   * /auth: the client keeps them and sends them with each pull and push). With a token
   * service, asks it for a refresh token as docker login does (`offline_token`) and returns
   * it as `identityToken` when it hands one out: the client keeps that in place of the
   * password. `creds` may be an identity token alone (a client logging in with the one it kept).
   */
  async checkLogin(
    registry: string,
    username: string,
    password: string,
    extra: Pick<Credentials, 'identityToken'> = {},
  ): Promise<{ identityToken?: string }> {
    this.transport.forget(registry);
    const state = await this.transport.host(registry);
    const creds: Credentials = { username, password, ...extra };
    const where = `${registry}`;
    if (state.challenge?.scheme === 'bearer') {
      const t = await this.authorizer.fetchToken(registry, state.challenge, [], creds, !creds.identityToken);
      return t.refreshToken ? { identityToken: t.refreshToken } : {};
    }
    if (creds.identityToken)
      throw new RegistryError('UNAUTHORIZED', `${registry} takes no identity token: log in with a password`, {
        host: registry,
      });
    if (state.challenge?.scheme === 'basic') {
      const res = await this.transport.send(state, new URL('/v2/', state.base), 'GET', {
        Authorization: basic(creds),
      });
      discard(res);
      if (res.status === 401 || res.status === 403) {
        // Docker's words: the docker CLI shows them as they are.
        const url = new URL('/v2/', state.base).href;
        const text = res.status === 401 ? 'Unauthorized' : 'Forbidden';
        throw new RegistryError(
          'UNAUTHORIZED',
          `login attempt to ${url} failed with status: ${res.status} ${text}`,
          {
            host: registry,
            status: res.status,
          },
        );
      }
      if (res.status !== 200) {
        throw new RegistryError('HTTP', `login to ${where} failed: /v2/ answered ${res.status}`, {
          host: registry,
          status: res.status,
        });
      }
    }
    return {};
  }

  /** Forgets a registry's stored credentials; true when there were some. */
  async logout(registry: string): Promise<boolean> {
    this.authorizer.forget(registry);
    return this.credentials.delete(registry);
  }

  /** Fetches a manifest or index as stored, verified against its digest. */
  getManifest(ref: Reference, opts: { signal?: AbortSignal } = {}): Promise<FetchedManifest> {
    return this.resolver.getManifest(ref, opts);
  }

  /** Resolves a reference to one image manifest, picking the platform from an index. */
  resolve(
    ref: Reference,
    opts: { platform?: Platform | string; signal?: AbortSignal } = {},
  ): Promise<ResolvedImage> {
    return this.resolver.resolve(ref, opts);
  }

  /** The digest, media type and size of a manifest, from a HEAD request; undefined when unknown. */
  headManifest(ref: Reference): Promise<{ digest?: string; mediaType: string; size: number } | undefined> {
    return this.resolver.headManifest(ref);
  }

  /** True when the repository holds the blob. */
  hasBlob(
    registry: string,
    repository: string,
    digest: string,
    action: 'pull' | 'push' = 'pull',
  ): Promise<boolean> {
    return this.fetcher.hasBlob(registry, repository, digest, action);
  }

  /**
   * Streams a blob; the stream fails (and a sink must then discard it) when the bytes do
   * not match the descriptor's digest and size.
   */
  fetchBlob(
    registry: string,
    repository: string,
    desc: Pick<Descriptor, 'digest' | 'size'>,
    opts: { signal?: AbortSignal; onBytes?: (n: number) => void; verifyDigest?: boolean } = {},
  ): Promise<Readable> {
    return this.fetcher.fetchBlob(registry, repository, desc, opts);
  }

  /** Reads a (small) blob whole, verified. */
  readBlob(
    registry: string,
    repository: string,
    desc: Pick<Descriptor, 'digest' | 'size'>,
    limit?: number,
  ): Promise<Buffer> {
    return this.fetcher.readBlob(registry, repository, desc, limit);
  }

  /**
   * Pulls an image into a sink: resolves the reference (picking the platform from an
   * index), fetches the layers in parallel (skipping ones the sink has), then the config,
   * and stores the manifest (and index) bytes too. Every blob is verified while it streams.
   */
  pull(ref: Reference, sink: BlobSink, opts: PullOptions = {}): Promise<PullResult> {
    return this.fetcher.pull(ref, sink, opts);
  }

  /**
   * Pushes an image manifest or an index with everything it refers to (see Pusher.push).
   */
  push(ref: Reference, image: PushImage, source: BlobProvider, opts: PushOptions = {}): Promise<PushResult> {
    return this.pusher.push(ref, image, source, opts);
  }

  /** PUTs manifest bytes under a tag or digest; returns the digest, checked against the registry's. */
  putManifest(ref: Reference, bytes: Buffer, mediaType: string): Promise<string> {
    return this.pusher.putManifest(ref, bytes, mediaType);
  }

  /** Uploads one blob unless the repository has it (see Pusher.pushBlob). */
  pushBlob(
    ref: Pick<Reference, 'domain' | 'path'>,
    desc: Pick<Descriptor, 'digest' | 'size'>,
    source: BlobProvider,
    opts: Omit<PushOptions, 'concurrency'> & { kind?: ProgressEvent['kind'] } = {},
  ): Promise<'uploaded' | 'exists' | 'mounted'> {
    return this.pusher.pushBlob(ref, desc, source, opts);
  }
}
