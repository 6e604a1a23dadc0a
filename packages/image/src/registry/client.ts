import { pipeline, type Readable } from 'node:stream';
import { isImageError } from '../errors.js';
import type { BlobExpectation, BlobInfo, BlobWriter } from '../store/blob-writer.js';
import { isDigest, sha256, shortId } from '../store/digest.js';
import { formatBytes as formatSize, MAX_CONFIG_BYTES, MAX_MANIFEST_BYTES } from '../store/limits.js';
import { familiarName, formatReference, type Reference } from '../store/reference.js';
import { type Descriptor, type ImageIndex, type Manifest, MediaType, type Platform } from '../store/types.js';
import { type Challenge, type Credentials, DockerCredentialStore, parseChallenge } from './auth.js';
import { getInto } from './blob-download.js';
import { DigestMismatchError, isRegistryError, RegistryError } from './errors.js';
import { hostname, isLoopbackHost, isValidDigest, registryApiHost } from './hosts.js';
import { DigestVerifier, discard, type HttpResponse, httpRequest, networkError, readBody } from './http.js';
import {
  digestWithAlgorithm,
  formatPlatform,
  hostPlatform,
  listPlatforms,
  MANIFEST_ACCEPT,
  type ManifestKind,
  manifestKind,
  normalizePlatform,
  parseImageIndex,
  parseImageManifest,
  parsePlatform,
  selectPlatform,
} from './manifest.js';
import type { ProgressEvent } from './progress.js';

/** Where pulled blobs go: a content store (the image store's ContentStore fits). */
export interface BlobSink {
  hasBlob(digest: string): boolean | Promise<boolean>;
  /**
   * True when writeBlob hashes what it stores and refuses a digest other than the expected
   * one; the client then checks only sizes instead of hashing every byte twice.
   */
  readonly verifiesDigest?: boolean;
  /**
   * A writer for one blob that the download reads into directly (the ContentStore has one);
   * without it, blobs go through writeBlob as streams.
   */
  createWriter?(expected: BlobExpectation): BlobWriter;
  /** Stores a blob; must refuse content that does not match `expected`. */
  writeBlob(
    source: Readable | Buffer,
    expected?: { digest?: string; size?: number; onBytes?: (total: number) => void },
  ): Promise<{ digest: string; size: number }>;
}

/** Where pushed blobs come from (manifests of an index's children included). */
export interface BlobProvider {
  openBlob(digest: string): Readable;
}

export interface RegistryClientOptions {
  /** Docker-style config.json with credentials; default `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`. */
  configPath?: string;
  /** Registries (`host` or `host:port`) that may be reached over plain HTTP or with unverified TLS. */
  insecureRegistries?: string[];
  userAgent?: string;
  /** Idle time after which a request fails, in ms. */
  timeoutMs?: number;
}

export interface FetchedManifest {
  digest: string;
  mediaType: string;
  kind: ManifestKind;
  bytes: Buffer;
}

/** An image manifest resolved from a reference, through an index when the reference names one. */
export interface ResolvedImage {
  reference: Reference;
  /** Digest of the image manifest (not of the index). */
  digest: string;
  mediaType: string;
  bytes: Buffer;
  manifest: Manifest;
  /** The index or manifest list the manifest was picked from, when there was one. */
  index?: { digest: string; mediaType: string; bytes: Buffer; index: ImageIndex };
  /** The platform entry that was picked from the index. */
  platform?: Platform;
}

export interface PullOptions {
  /** Platform to pick from an index: `linux/arm64`, or a Platform; default linux/<host arch>. */
  platform?: Platform | string;
  /**
   * Layers downloaded at once: default 3, Docker's and containerd's default. (More loses on
   * a fast link: measured on a loopback registry, 4 took 1.15x the time of 3.)
   */
  concurrency?: number;
  onProgress?: (event: ProgressEvent) => void;
  /**
   * Told of each layer once its blob is in the sink (downloaded or already there), with its
   * diff ID from the image config when the config names a valid one: to unpack it early.
   */
  onLayer?: (layer: Descriptor, diffId: string | undefined) => void;
  signal?: AbortSignal;
}

export interface PullResult extends ResolvedImage {
  config: Record<string, unknown>;
  configBytes: Buffer;
  /** Bytes fetched from the registry for layers (skipped ones excluded). */
  bytesDownloaded: number;
}

export interface PushOptions {
  concurrency?: number;
  onProgress?: (event: ProgressEvent) => void;
  /** Upload in chunks of this many bytes (PATCH each, then PUT); default one monolithic PUT. */
  chunkSize?: number;
  /** A repository on the same registry to mount blobs from instead of uploading them. */
  mountFrom?: string;
  signal?: AbortSignal;
}

export interface PushImage {
  /** The manifest or index bytes, pushed exactly as given. */
  manifest: Buffer;
  /** Its media type; read from the manifest's `mediaType` field when not given. */
  mediaType?: string;
}

export interface PushResult {
  digest: string;
  size: number;
  mediaType: string;
  /** Per blob what was done: uploaded, skipped because it exists, or mounted. */
  blobs: { digest: string; outcome: 'uploaded' | 'exists' | 'mounted' }[];
}

interface HostState {
  base: URL;
  insecureTls: boolean;
  challenge: Challenge | undefined;
}

interface Context {
  registry: string;
  repository: string;
  action: 'pull' | 'push';
  what: string;
}

/** The token scopes a request of `ctx` needs. */
function scopesFor(ctx: Context, extra: string[] = []): string[] {
  return [`repository:${ctx.repository}:${ctx.action === 'push' ? 'pull,push' : 'pull'}`, ...extra];
}

/** Tries per layer when the connection drops. */
const PULL_ATTEMPTS = 3;

/**
 * A client for registries that speak the OCI distribution API (Docker Hub, the CNCF
 * distribution server, ...): ping, login, manifests, blobs, pull into a BlobSink and push
 * from a BlobSource, with anonymous, basic and bearer-token auth.
 */
export class RegistryClient {
  readonly credentials: DockerCredentialStore;
  private readonly insecure: Set<string>;
  private readonly userAgent: string;
  private readonly timeoutMs: number;
  private readonly hosts = new Map<string, Promise<HostState>>();
  /** Bearer tokens per registry and scope set; a pending request is shared by parallel callers. */
  private readonly tokens = new Map<string, { header: Promise<string>; expires: number }>();
  private readonly creds = new Map<string, Promise<Credentials | undefined>>();

  constructor(opts: RegistryClientOptions = {}) {
    this.credentials = new DockerCredentialStore(opts.configPath);
    this.insecure = new Set((opts.insecureRegistries ?? []).map((h) => h.toLowerCase()));
    this.userAgent = opts.userAgent ?? 'corral';
    this.timeoutMs = opts.timeoutMs ?? 60_000;
  }

  /** True when the registry may be reached over plain HTTP: loopback, or named insecure. */
  isInsecure(registry: string): boolean {
    const r = registry.toLowerCase();
    return isLoopbackHost(r) || this.insecure.has(r) || this.insecure.has(hostname(r));
  }

  /** Checks that a registry answers the /v2/ API and says which auth it asks for. */
  async ping(registry: string): Promise<{ url: string; auth: 'none' | 'basic' | 'bearer' }> {
    const state = await this.host(registry);
    return { url: state.base.href, auth: state.challenge?.scheme ?? 'none' };
  }

  /**
   * Checks the credentials against the registry (Basic on /v2/, or a token request for
   * Bearer) and, when they work, stores them in config.json.
   */
  async login(registry: string, username: string, password: string): Promise<void> {
    this.hosts.delete(registry);
    const state = await this.host(registry);
    const creds = { username, password };
    const where = `${registry}`;
    if (state.challenge?.scheme === 'bearer') {
      await this.fetchToken(registry, state.challenge, [], creds);
    } else if (state.challenge?.scheme === 'basic') {
      const res = await this.send(state, new URL('/v2/', state.base), 'GET', { Authorization: basic(creds) });
      discard(res);
      if (res.status === 401 || res.status === 403) {
        throw new RegistryError('UNAUTHORIZED', `login to ${where} failed: wrong username or password`, {
          host: registry,
          status: res.status,
        });
      }
      if (res.status !== 200) {
        throw new RegistryError('HTTP', `login to ${where} failed: /v2/ answered ${res.status}`, {
          host: registry,
          status: res.status,
        });
      }
    }
    await this.credentials.set(registry, creds);
    this.creds.set(registry, Promise.resolve(creds));
    for (const key of this.tokens.keys()) if (key.startsWith(`${registry} `)) this.tokens.delete(key);
  }

  /** Forgets a registry's stored credentials; true when there were some. */
  async logout(registry: string): Promise<boolean> {
    this.creds.delete(registry);
    for (const key of this.tokens.keys()) if (key.startsWith(`${registry} `)) this.tokens.delete(key);
    return this.credentials.delete(registry);
  }

  /** Fetches a manifest or index as stored, verified against its digest. */
  async getManifest(ref: Reference, opts: { signal?: AbortSignal } = {}): Promise<FetchedManifest> {
    const ctx: Context = {
      registry: ref.domain,
      repository: ref.path,
      action: 'pull',
      what: familiar(ref),
    };
    const tagOrDigest = ref.digest ?? ref.tag ?? 'latest';
    const res = await this.request(ctx, 'GET', `/v2/${ref.path}/manifests/${tagOrDigest}`, {
      headers: { Accept: MANIFEST_ACCEPT },
      signal: opts.signal,
    });
    if (res.status !== 200) throw await this.failure(res, ctx, 'manifest');
    const bytes = await readBody(res, MAX_MANIFEST_BYTES);
    const announced = headerDigest(res);
    if (ref.digest) {
      const actual = digestWithAlgorithm(bytes, ref.digest);
      if (actual !== ref.digest)
        throw new DigestMismatchError(`manifest ${formatReference(ref)}`, ref.digest, actual);
    }
    if (announced) {
      const actual = digestWithAlgorithm(bytes, announced);
      if (actual !== announced) {
        throw new DigestMismatchError(
          `manifest ${formatReference(ref)} (Docker-Content-Digest from ${ref.domain})`,
          announced,
          actual,
        );
      }
    }
    let json: unknown;
    try {
      json = JSON.parse(bytes.toString('utf8'));
    } catch {
      throw new RegistryError('INVALID_MANIFEST', `manifest ${formatReference(ref)} is not JSON`, {
        host: ref.domain,
      });
    }
    const contentType = (res.headers['content-type'] ?? '').split(';', 1)[0]!.trim();
    const fieldType = (json as { mediaType?: unknown })?.mediaType;
    const mediaType = isManifestType(contentType)
      ? contentType
      : typeof fieldType === 'string' && fieldType !== ''
        ? fieldType
        : contentType;
    const kind = manifestKind(mediaType || undefined, json);
    // Stores address content by sha256, whatever algorithm the registry announced.
    const digest = ref.digest ?? sha256(bytes);
    return {
      digest,
      mediaType: isManifestType(mediaType) ? mediaType : defaultMediaType(kind, json),
      kind,
      bytes,
    };
  }

  /** Resolves a reference to one image manifest, picking the platform from an index. */
  async resolve(
    ref: Reference,
    opts: { platform?: Platform | string; signal?: AbortSignal } = {},
  ): Promise<ResolvedImage> {
    const top = await this.getManifest(ref, opts);
    if (top.kind === 'manifest') {
      return {
        reference: ref,
        digest: top.digest,
        mediaType: top.mediaType,
        bytes: top.bytes,
        manifest: parseImageManifest(top.bytes),
      };
    }
    const index = parseImageIndex(top.bytes);
    const want =
      typeof opts.platform === 'string' ? parsePlatform(opts.platform) : (opts.platform ?? hostPlatform());
    const entry = selectPlatform(index, want);
    if (!entry) {
      const offered = listPlatforms(index);
      throw new RegistryError(
        'PLATFORM_UNAVAILABLE',
        `${familiar(ref)} has no image for ${formatPlatform(want)}; it offers ${offered.length ? offered.join(', ') : 'no platforms'}: pick one with --platform`,
        { host: ref.domain },
      );
    }
    const child = await this.getManifest({ ...ref, digest: entry.digest }, opts);
    if (child.bytes.length !== entry.size) {
      throw new RegistryError(
        'SIZE_MISMATCH',
        `manifest ${entry.digest} of ${familiar(ref)}: the index says ${entry.size} bytes, the registry sent ${child.bytes.length}`,
        { host: ref.domain },
      );
    }
    if (child.kind !== 'manifest') {
      throw new RegistryError('UNSUPPORTED_MANIFEST', `${familiar(ref)}: nested indexes are not supported`);
    }
    return {
      reference: ref,
      digest: child.digest,
      mediaType: child.mediaType,
      bytes: child.bytes,
      manifest: parseImageManifest(child.bytes),
      index: { digest: top.digest, mediaType: top.mediaType, bytes: top.bytes, index },
      platform: entry.platform,
    };
  }

  /** The digest, media type and size of a manifest, from a HEAD request; undefined when unknown. */
  async headManifest(
    ref: Reference,
  ): Promise<{ digest?: string; mediaType: string; size: number } | undefined> {
    const ctx: Context = {
      registry: ref.domain,
      repository: ref.path,
      action: 'pull',
      what: familiar(ref),
    };
    const res = await this.request(
      ctx,
      'HEAD',
      `/v2/${ref.path}/manifests/${ref.digest ?? ref.tag ?? 'latest'}`,
      {
        headers: { Accept: MANIFEST_ACCEPT },
      },
    );
    discard(res);
    if (res.status === 404) return undefined;
    if (res.status !== 200) throw await this.failure(res, ctx, 'manifest');
    return {
      digest: headerDigest(res),
      mediaType: (res.headers['content-type'] ?? '').split(';', 1)[0]!.trim(),
      size: Number(res.headers['content-length'] ?? 0),
    };
  }

  /** True when the repository holds the blob. */
  async hasBlob(
    registry: string,
    repository: string,
    digest: string,
    action: 'pull' | 'push' = 'pull',
  ): Promise<boolean> {
    const ctx: Context = {
      registry,
      repository,
      action,
      what: `blob ${digest} in ${registry}/${repository}`,
    };
    const res = await this.request(ctx, 'HEAD', `/v2/${repository}/blobs/${digest}`);
    discard(res);
    if (res.status === 200) return true;
    if (res.status === 404) return false;
    throw await this.failure(res, ctx, 'blob');
  }

  /**
   * Streams a blob; the stream fails (and a sink must then discard it) when the bytes do
   * not match the descriptor's digest and size.
   */
  async fetchBlob(
    registry: string,
    repository: string,
    desc: Pick<Descriptor, 'digest' | 'size'>,
    opts: {
      signal?: AbortSignal;
      onBytes?: (n: number) => void;
      /** False: check only the size, because the consumer hashes and verifies the bytes itself. */
      verifyDigest?: boolean;
    } = {},
  ): Promise<Readable> {
    if (!isValidDigest(desc.digest)) {
      throw new RegistryError('INVALID_MANIFEST', `cannot fetch blob "${desc.digest}": not a valid digest`);
    }
    const ctx: Context = {
      registry,
      repository,
      action: 'pull',
      what: `blob ${desc.digest} of ${registry}/${repository}`,
    };
    const res = await this.request(ctx, 'GET', `/v2/${repository}/blobs/${desc.digest}`, {
      signal: opts.signal,
    });
    if (res.status !== 200) throw await this.failure(res, ctx, 'blob');
    const verifier = new DigestVerifier(
      desc.digest,
      desc.size,
      `blob ${desc.digest} from ${registry}/${repository}`,
      opts.onBytes,
      opts.verifyDigest !== false,
    );
    // A connection lost half way fails the stream with an error that names the host.
    res.body.on('error', (e) => verifier.destroy(networkError(res.url.host, e)));
    verifier.on('close', () => {
      if (!res.body.complete) res.body.destroy();
    });
    res.body.pipe(verifier);
    // The caller reads the stream and sees its errors there; until it starts, an error must
    // not be an unhandled 'error' event that ends the process.
    verifier.on('error', () => {});
    return verifier;
  }

  /**
   * Downloads a blob into a writer and finishes it (size and digest checked there). The
   * plain case reads the socket straight into the writer; any other answer (a 401 to
   * renew a token, an error, a chunked body) is asked again through node:http.
   */
  private async downloadInto(
    registry: string,
    repository: string,
    desc: Pick<Descriptor, 'digest'>,
    writer: BlobWriter,
    signal?: AbortSignal,
    /** Called once all bytes are in, before the writer syncs them to disk. */
    onBody?: () => void,
  ): Promise<BlobInfo> {
    try {
      const ctx: Context = { registry, repository, action: 'pull', what: `blob ${desc.digest}` };
      const state = await this.host(registry);
      const url = new URL(`/v2/${repository}/blobs/${desc.digest}`, state.base);
      const auth = await this.authorization(registry, state, scopesFor(ctx));
      const got = await getInto(url, writer, {
        headers: this.withUserAgent(auth ? { Authorization: auth } : {}),
        insecureTls: state.insecureTls,
        signal,
        timeoutMs: this.timeoutMs,
      });
      if (got === 'declined') {
        const body = await this.openBlob(registry, repository, desc, signal);
        for await (const chunk of body as AsyncIterable<Buffer>) await writer.write(chunk);
      }
    } catch (e) {
      await writer.abort();
      throw e;
    }
    onBody?.();
    return writer.finish();
  }

  /**
   * The response body of a blob, unchecked: for a sink that hashes, sizes and verifies what
   * it stores (the content store), which then refuses any mismatch itself.
   */
  private async openBlob(
    registry: string,
    repository: string,
    desc: Pick<Descriptor, 'digest'>,
    signal?: AbortSignal,
  ): Promise<Readable> {
    const ctx: Context = {
      registry,
      repository,
      action: 'pull',
      what: `blob ${desc.digest} of ${registry}/${repository}`,
    };
    const res = await this.request(ctx, 'GET', `/v2/${repository}/blobs/${desc.digest}`, { signal });
    if (res.status !== 200) throw await this.failure(res, ctx, 'blob');
    // The sink reads it at once and sees its errors there; never an unhandled 'error' event.
    res.body.on('error', () => {});
    return res.body;
  }

  /** Reads a (small) blob whole, verified. */
  async readBlob(
    registry: string,
    repository: string,
    desc: Pick<Descriptor, 'digest' | 'size'>,
    limit = MAX_CONFIG_BYTES,
  ): Promise<Buffer> {
    if (desc.size > limit) {
      throw new RegistryError(
        'INVALID_MANIFEST',
        `blob ${desc.digest} is ${formatSize(desc.size)}, more than the ${formatSize(limit)} allowed for it here; refused before downloading it`,
      );
    }
    const stream = await this.fetchBlob(registry, repository, desc);
    const chunks: Buffer[] = [];
    for await (const c of stream as AsyncIterable<Buffer>) chunks.push(c);
    return Buffer.concat(chunks);
  }

  /**
   * Pulls an image into a sink: resolves the reference (picking the platform from an
   * index), fetches the layers in parallel (skipping ones the sink has), then the config,
   * and stores the manifest (and index) bytes too. Every blob is verified while it streams.
   */
  async pull(ref: Reference, sink: BlobSink, opts: PullOptions = {}): Promise<PullResult> {
    const resolved = await this.resolve(ref, opts);
    const { manifest } = resolved;
    const configBytes = await this.readBlob(ref.domain, ref.path, manifest.config);
    let config: Record<string, unknown>;
    try {
      config = JSON.parse(configBytes.toString('utf8')) as Record<string, unknown>;
    } catch {
      throw new RegistryError(
        'INVALID_CONFIG',
        `the image config ${manifest.config.digest} of ${familiar(ref)} is not JSON`,
      );
    }
    if (!config || typeof config !== 'object' || Array.isArray(config)) {
      throw new RegistryError(
        'INVALID_CONFIG',
        `the image config ${manifest.config.digest} of ${familiar(ref)} is not an object`,
      );
    }
    // A single-platform image must be the platform asked for (an index was already matched).
    if (opts.platform !== undefined && !resolved.index) {
      const want = normalizePlatform(
        typeof opts.platform === 'string' ? parsePlatform(opts.platform) : opts.platform,
      );
      const os = typeof config['os'] === 'string' ? config['os'] : '';
      const architecture = typeof config['architecture'] === 'string' ? config['architecture'] : '';
      const variant = typeof config['variant'] === 'string' ? config['variant'] : undefined;
      const have = normalizePlatform({ os, architecture, variant });
      if (
        have.os !== want.os ||
        have.architecture !== want.architecture ||
        (variant && have.variant !== want.variant)
      ) {
        throw new RegistryError(
          'PLATFORM_UNAVAILABLE',
          `${familiar(ref)} is an image for ${formatPlatform(have)}, not ${formatPlatform(want)}; pull it without --platform or pick another image`,
          { host: ref.domain },
        );
      }
    }
    const emit = opts.onProgress ?? (() => {});
    const layers = uniqueByDigest(manifest.layers);
    const rootfs = config['rootfs'] as { diff_ids?: unknown } | undefined;
    const diffIds = Array.isArray(rootfs?.diff_ids) ? rootfs.diff_ids : [];
    const layerIn = (layer: Descriptor) => {
      const diffId = diffIds[manifest.layers.findIndex((l) => l.digest === layer.digest)];
      opts.onLayer?.(layer, typeof diffId === 'string' && isDigest(diffId) ? diffId : undefined);
    };
    for (const l of layers) emit(event(l, 'layer', 'waiting', 0));
    // A sink that hashes what it writes and refuses a mismatch needs no second hash here.
    const sinkVerifies = sink.verifiesDigest === true;
    let bytesDownloaded = 0;
    await runLimited(layers, opts.concurrency ?? 3, opts.signal, async (layer, signal, release) => {
      if (await sink.hasBlob(layer.digest)) {
        emit(event(layer, 'layer', 'exists', layer.size));
        layerIn(layer);
        return;
      }
      for (let attempt = 1; ; attempt++) {
        emit(event(layer, 'layer', 'downloading', 0));
        try {
          const onBytes = (n: number) => emit(event(layer, 'layer', 'downloading', n));
          const expected = { digest: layer.digest, size: layer.size };
          const stored = await (sink.createWriter
            ? // Read from the socket straight into the store's memory (see blob-download.ts).
              this.downloadInto(
                ref.domain,
                ref.path,
                layer,
                sink.createWriter({ ...expected, onBytes }),
                signal,
                release,
              )
            : sinkVerifies
              ? // A sink that verifies gets the response as it comes: no extra stream stage.
                this.openBlob(ref.domain, ref.path, layer, signal).then((stream) =>
                  sink.writeBlob(stream, { ...expected, onBytes }),
                )
              : this.fetchBlob(ref.domain, ref.path, layer, { signal, onBytes }).then((stream) =>
                  sink.writeBlob(stream, expected),
                )
          ).catch((e) => {
            throw isRegistryError(e) || isImageError(e) ? e : networkError(ref.domain, e);
          });
          if (stored.digest !== layer.digest)
            throw new DigestMismatchError(`layer ${layer.digest}`, layer.digest, stored.digest);
          break;
        } catch (e) {
          // A dropped connection is worth another try (as docker does); wrong content is not.
          if (attempt < PULL_ATTEMPTS && isRegistryError(e, 'NETWORK') && !signal.aborted) {
            emit(event(layer, 'layer', 'retrying', 0));
            await new Promise((r) => setTimeout(r, 250 * attempt));
            continue;
          }
          emit(event(layer, 'layer', 'failed', 0));
          if (isImageError(e, 'DIGEST_MISMATCH')) {
            throw new RegistryError('DIGEST_MISMATCH', `layer from ${ref.domain}/${ref.path}: ${e.message}`, {
              host: ref.domain,
              cause: e,
            });
          }
          throw e;
        }
      }
      bytesDownloaded += layer.size;
      emit(event(layer, 'layer', 'done', layer.size));
      layerIn(layer);
    });
    if (!(await sink.hasBlob(manifest.config.digest))) {
      await sink.writeBlob(configBytes, { digest: manifest.config.digest, size: manifest.config.size });
    }
    emit(event(manifest.config, 'config', 'done', manifest.config.size));
    await storeBytes(sink, resolved.bytes, resolved.digest);
    if (resolved.index) await storeBytes(sink, resolved.index.bytes, resolved.index.digest);
    emit(
      event(
        { digest: resolved.digest, size: resolved.bytes.length },
        'manifest',
        'done',
        resolved.bytes.length,
      ),
    );
    return { ...resolved, config, configBytes, bytesDownloaded };
  }

  /**
   * Pushes an image manifest or an index with everything it refers to: blobs the
   * repository already has are skipped (HEAD), others mounted or uploaded, then each
   * manifest is PUT and the digest the registry answers is checked against ours.
   */
  async push(
    ref: Reference,
    image: PushImage,
    source: BlobProvider,
    opts: PushOptions = {},
  ): Promise<PushResult> {
    const blobs: PushResult['blobs'] = [];
    const mediaType = image.mediaType ?? mediaTypeOf(image.manifest);
    const kind = manifestKind(mediaType, JSON.parse(image.manifest.toString('utf8')));
    if (kind === 'index') {
      const index = parseImageIndex(image.manifest);
      for (const child of index.manifests) {
        const bytes = await readSourceBlob(source, child);
        const childKind = manifestKind(child.mediaType, JSON.parse(bytes.toString('utf8')));
        if (childKind !== 'manifest')
          throw new RegistryError('UNSUPPORTED_MANIFEST', 'nested indexes cannot be pushed');
        blobs.push(...(await this.pushBlobs(ref, parseImageManifest(bytes), source, opts)));
        await this.putManifest({ ...ref, tag: undefined, digest: child.digest }, bytes, child.mediaType);
      }
    } else {
      blobs.push(...(await this.pushBlobs(ref, parseImageManifest(image.manifest), source, opts)));
    }
    const digest = await this.putManifest(ref, image.manifest, mediaType);
    return { digest, size: image.manifest.length, mediaType, blobs };
  }

  /** PUTs manifest bytes under a tag or digest; returns the digest, checked against the registry's. */
  async putManifest(ref: Reference, bytes: Buffer, mediaType: string): Promise<string> {
    const ctx: Context = {
      registry: ref.domain,
      repository: ref.path,
      action: 'push',
      what: familiar(ref),
    };
    const digest = sha256(bytes);
    if (ref.digest && ref.digest !== digest && !ref.tag) {
      throw new DigestMismatchError(`manifest for ${formatReference(ref)}`, ref.digest, digest);
    }
    const res = await this.request(ctx, 'PUT', `/v2/${ref.path}/manifests/${ref.tag ?? ref.digest}`, {
      headers: { 'Content-Type': mediaType },
      body: bytes,
    });
    if (res.status !== 201 && res.status !== 200) throw await this.failure(res, ctx, 'manifest');
    discard(res);
    const answered = headerDigest(res);
    if (answered && answered !== digest) {
      throw new DigestMismatchError(
        `manifest pushed to ${formatReference(ref)} (registry's digest)`,
        digest,
        answered,
        ref.domain,
      );
    }
    return digest;
  }

  /**
   * Uploads one blob unless the repository has it: cross-repository mount when asked,
   * else POST to open an upload and one PUT (or PATCHes of `chunkSize` then a PUT).
   */
  async pushBlob(
    ref: Pick<Reference, 'domain' | 'path'>,
    desc: Pick<Descriptor, 'digest' | 'size'>,
    source: BlobProvider,
    opts: Omit<PushOptions, 'concurrency'> & { kind?: ProgressEvent['kind'] } = {},
  ): Promise<'uploaded' | 'exists' | 'mounted'> {
    const emit = opts.onProgress ?? (() => {});
    const kind = opts.kind ?? 'layer';
    const ctx: Context = {
      registry: ref.domain,
      repository: ref.path,
      action: 'push',
      what: `blob ${desc.digest} to ${ref.domain}/${ref.path}`,
    };
    const extra = opts.mountFrom ? [`repository:${opts.mountFrom}:pull`] : [];
    if (await this.hasBlobFor(ctx, desc.digest, extra)) {
      emit(event(desc, kind, 'exists', desc.size));
      return 'exists';
    }
    const query = opts.mountFrom
      ? `?mount=${encodeURIComponent(desc.digest)}&from=${encodeURIComponent(opts.mountFrom)}`
      : '';
    const start = await this.request(ctx, 'POST', `/v2/${ref.path}/blobs/uploads/${query}`, {
      body: Buffer.alloc(0),
      extraScopes: extra,
    });
    if (start.status === 201 && opts.mountFrom) {
      discard(start);
      emit(event(desc, kind, 'mounted', desc.size));
      return 'mounted';
    }
    if (start.status !== 202) throw await this.failure(start, ctx, 'upload');
    discard(start);
    let location = uploadLocation(start);
    emit(event(desc, kind, 'uploading', 0));
    const what = `blob ${desc.digest} (local copy)`;
    const open = (): Readable => {
      const verifier = new DigestVerifier(desc.digest, desc.size, what, (n) =>
        emit(event(desc, kind, 'uploading', n)),
      );
      return pipeline(source.openBlob(desc.digest), verifier, () => {});
    };
    try {
      let done: HttpResponse;
      if (opts.chunkSize && opts.chunkSize > 0) {
        let offset = 0;
        for await (const chunk of chunks(open(), opts.chunkSize)) {
          const res = await this.request(ctx, 'PATCH', location, {
            headers: {
              'Content-Type': 'application/octet-stream',
              'Content-Range': `${offset}-${offset + chunk.length - 1}`,
            },
            body: chunk,
            signal: opts.signal,
          });
          if (res.status !== 202) throw await this.failure(res, ctx, 'upload');
          discard(res);
          location = uploadLocation(res);
          offset += chunk.length;
        }
        done = await this.request(ctx, 'PUT', withDigest(location, desc.digest), {
          body: Buffer.alloc(0),
          signal: opts.signal,
        });
      } else {
        done = await this.request(ctx, 'PUT', withDigest(location, desc.digest), {
          headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(desc.size) },
          body: open,
          signal: opts.signal,
        });
      }
      if (done.status !== 201) throw await this.failure(done, ctx, 'upload');
      discard(done);
      const answered = headerDigest(done);
      if (answered && answered !== desc.digest) {
        throw new DigestMismatchError(
          `blob pushed to ${ref.domain}/${ref.path}`,
          desc.digest,
          answered,
          ref.domain,
        );
      }
    } catch (e) {
      // Close the upload session so the registry does not keep the partial blob around.
      await this.request(ctx, 'DELETE', location)
        .then(discard)
        .catch(() => {});
      throw e;
    }
    emit(event(desc, kind, 'done', desc.size));
    return 'uploaded';
  }

  private async pushBlobs(
    ref: Reference,
    manifest: Manifest,
    source: BlobProvider,
    opts: PushOptions,
  ): Promise<PushResult['blobs']> {
    const items = [
      ...uniqueByDigest(manifest.layers).map((d) => ({ d, kind: 'layer' as const })),
      { d: manifest.config, kind: 'config' as const },
    ];
    const out: PushResult['blobs'] = [];
    for (const { d, kind } of items) opts.onProgress?.(event(d, kind, 'waiting', 0));
    await runLimited(items, opts.concurrency ?? 4, opts.signal, async ({ d, kind }, signal) => {
      const outcome = await this.pushBlob(ref, d, source, { ...opts, signal, kind });
      out.push({ digest: d.digest, outcome });
    });
    return out;
  }

  private async hasBlobFor(ctx: Context, digest: string, extraScopes: string[]): Promise<boolean> {
    const res = await this.request(ctx, 'HEAD', `/v2/${ctx.repository}/blobs/${digest}`, { extraScopes });
    discard(res);
    if (res.status === 200) return true;
    if (res.status === 404) return false;
    throw await this.failure(res, ctx, 'blob');
  }

  /** Learns once per registry which scheme works and which auth it wants (GET /v2/). */
  private host(registry: string): Promise<HostState> {
    let state = this.hosts.get(registry);
    if (!state) {
      state = this.probe(registry);
      this.hosts.set(registry, state);
      state.catch(() => this.hosts.delete(registry));
    }
    return state;
  }

  private async probe(registry: string): Promise<HostState> {
    const apiHost = registryApiHost(registry);
    const insecure = this.isInsecure(registry);
    // Like Docker: HTTPS first; plain HTTP only for loopback and registries named insecure.
    const schemes = insecure ? ['https', 'http'] : ['https'];
    let lastError: unknown;
    for (const scheme of schemes) {
      const base = new URL(`${scheme}://${apiHost}/`);
      const state: HostState = { base, insecureTls: insecure, challenge: undefined };
      let res: HttpResponse;
      try {
        res = await this.send(state, new URL('/v2/', base), 'GET', {});
      } catch (e) {
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

  private withUserAgent(headers: Record<string, string>): Record<string, string> {
    return { 'User-Agent': this.userAgent, ...headers };
  }

  private send(
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
      timeoutMs: this.timeoutMs,
    });
  }

  /** One authorised API request; a 401 gets one retry with a fresh token or the new challenge. */
  private async request(
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
    const state = await this.host(ctx.registry);
    const url = new URL(pathOrUrl, state.base);
    if (url.origin !== state.base.origin && url.protocol === 'http:' && !this.isInsecure(url.host)) {
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
        url.origin === state.base.origin ? await this.authorization(ctx.registry, state, scopes) : undefined;
      if (auth) headers['Authorization'] = auth;
      const res = await this.send(state, url, method, headers, opts.body, opts.signal);
      if (res.status !== 401 || attempt > 0) return res;
      const challenge = parseChallenge(headerValue(res.headers['www-authenticate']));
      if (!challenge) return res;
      discard(res);
      state.challenge = challenge;
      this.tokens.delete(tokenKey(ctx.registry, scopes));
    }
  }

  private async authorization(
    registry: string,
    state: HostState,
    scopes: string[],
  ): Promise<string | undefined> {
    const challenge = state.challenge;
    if (!challenge) return undefined;
    const creds = await this.storedCredentials(registry);
    if (challenge.scheme === 'basic') return creds ? basic(creds) : undefined;
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

  private storedCredentials(registry: string): Promise<Credentials | undefined> {
    let c = this.creds.get(registry);
    if (!c) {
      c = this.credentials.get(registry);
      this.creds.set(registry, c);
      c.catch(() => this.creds.delete(registry));
    }
    return c;
  }

  /** Asks the token service named by a Bearer challenge for a token covering `scopes`. */
  private async fetchToken(
    registry: string,
    challenge: Challenge,
    scopes: string[],
    creds: Credentials | undefined,
  ): Promise<{ token: string; expiresIn: number }> {
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
    if (url.protocol === 'http:' && !this.isInsecure(url.host)) {
      throw new RegistryError(
        'UNAUTHORIZED',
        `${registry} sends token requests to ${url.origin} over plain HTTP; refused (only loopback or insecure registries may use HTTP)`,
        { host: registry },
      );
    }
    const headers: Record<string, string> = { 'User-Agent': this.userAgent, Accept: 'application/json' };
    let body: Buffer | undefined;
    if (creds?.identityToken) {
      // OAuth2: trade the refresh token for an access token (POST form), as docker does.
      const form = new URLSearchParams({
        grant_type: 'refresh_token',
        refresh_token: creds.identityToken,
        client_id: this.userAgent,
      });
      if (challenge.params['service']) form.set('service', challenge.params['service']);
      if (scopes.length) form.set('scope', scopes.join(' '));
      body = Buffer.from(form.toString());
      headers['Content-Type'] = 'application/x-www-form-urlencoded';
    } else {
      if (challenge.params['service']) url.searchParams.set('service', challenge.params['service']);
      for (const s of scopes) url.searchParams.append('scope', s);
      if (creds) {
        url.searchParams.set('account', creds.username);
        headers['Authorization'] = basic(creds);
      }
    }
    const res = await httpRequest(url, {
      method: body ? 'POST' : 'GET',
      headers,
      body,
      insecureTls: this.isInsecure(url.host),
      timeoutMs: this.timeoutMs,
    });
    if (res.status === 401 || res.status === 403) {
      discard(res);
      throw new RegistryError(
        'UNAUTHORIZED',
        creds
          ? `the token service of ${registry} refused the credentials for ${creds.username}; run \`corral login ${registry}\` again`
          : `${registry} wants credentials; run \`corral login ${registry}\``,
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
    let answer: { token?: string; access_token?: string; expires_in?: number };
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
    };
  }

  /** Turns an unexpected answer into an error that says what to do. */
  private async failure(
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
    const creds = await this.storedCredentials(ctx.registry).catch(() => undefined);
    if (res.status === 401) {
      return new RegistryError(
        'UNAUTHORIZED',
        creds
          ? `${ctx.registry} refused the stored credentials of ${creds.username} to ${ctx.action} ${ctx.what}${suffix}; run \`corral login ${ctx.registry}\` again`
          : `authentication required to ${ctx.action} ${ctx.what}${suffix}; run \`corral login ${ctx.registry}\``,
        opts,
      );
    }
    if (res.status === 403) {
      return new RegistryError(
        'DENIED',
        `access denied: ${ctx.registry} does not let ${creds ? creds.username : 'anonymous users'} ${ctx.action} ${ctx.what}${suffix}; run \`corral login ${ctx.registry}\` with an account that may`,
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

/** `busybox:latest`, `localhost:5000/app:1`. */
function familiar(ref: Reference): string {
  return familiarName(formatReference(ref));
}

function basic(c: Credentials): string {
  return `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;
}

function tokenKey(registry: string, scopes: string[]): string {
  return `${registry} ${[...scopes].sort().join(' ')}`;
}

function headerValue(h: string | string[] | undefined): string | undefined {
  return Array.isArray(h) ? h.join(', ') : h;
}

function headerDigest(res: HttpResponse): string | undefined {
  const d = headerValue(res.headers['docker-content-digest'])?.trim();
  return d && isValidDigest(d) ? d : undefined;
}

function isManifestType(t: string): boolean {
  return (
    t === MediaType.DockerManifest ||
    t === MediaType.DockerManifestList ||
    t === MediaType.OciManifest ||
    t === MediaType.OciIndex ||
    /^application\/vnd\.docker\.distribution\.manifest\.v1\+/.test(t)
  );
}

function defaultMediaType(kind: ManifestKind, json: unknown): string {
  const configType = (json as { config?: { mediaType?: string } })?.config?.mediaType;
  if (kind === 'index') return MediaType.OciIndex;
  return configType === MediaType.DockerConfig ? MediaType.DockerManifest : MediaType.OciManifest;
}

/** The media type to PUT a manifest with: its `mediaType` field, or guessed from its shape. */
function mediaTypeOf(bytes: Buffer): string {
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new RegistryError('INVALID_MANIFEST', 'the manifest to push is not JSON');
  }
  const field = (json as { mediaType?: unknown })?.mediaType;
  if (typeof field === 'string' && field !== '') return field;
  return defaultMediaType(manifestKind(undefined, json), json);
}

function uploadLocation(res: HttpResponse): string {
  const loc = headerValue(res.headers['location']);
  if (!loc) {
    throw new RegistryError('HTTP', `${res.url.host} opened an upload without a Location header`, {
      host: res.url.host,
    });
  }
  return new URL(loc, res.url).href;
}

function withDigest(location: string, digest: string): string {
  const url = new URL(location);
  url.searchParams.set('digest', digest);
  return url.href;
}

function uniqueByDigest<T extends { digest: string }>(items: T[]): T[] {
  const seen = new Set<string>();
  return items.filter((i) => {
    if (seen.has(i.digest)) return false;
    seen.add(i.digest);
    return true;
  });
}

function event(
  d: Pick<Descriptor, 'digest' | 'size'>,
  kind: ProgressEvent['kind'],
  status: ProgressEvent['status'],
  current: number,
): ProgressEvent {
  return { id: shortId(d.digest), digest: d.digest, kind, status, current, total: d.size };
}

async function storeBytes(sink: BlobSink, bytes: Buffer, digest: string): Promise<void> {
  if (await sink.hasBlob(digest)) return;
  if (!digest.startsWith('sha256:')) return;
  await sink.writeBlob(bytes, { digest, size: bytes.length });
}

async function readSourceBlob(source: BlobProvider, desc: Descriptor): Promise<Buffer> {
  const verifier = new DigestVerifier(desc.digest, desc.size, `manifest ${desc.digest} (local copy)`);
  const stream = pipeline(source.openBlob(desc.digest), verifier, () => {});
  const parts: Buffer[] = [];
  for await (const c of stream as AsyncIterable<Buffer>) parts.push(c);
  return Buffer.concat(parts);
}

/** Splits a stream into buffers of `size` bytes (the last may be shorter). */
async function* chunks(stream: Readable, size: number): AsyncGenerator<Buffer> {
  let pending: Buffer[] = [];
  let length = 0;
  for await (const c of stream as AsyncIterable<Buffer>) {
    let chunk = c;
    while (length + chunk.length >= size) {
      const take = size - length;
      pending.push(chunk.subarray(0, take));
      yield Buffer.concat(pending);
      pending = [];
      length = 0;
      chunk = chunk.subarray(take);
    }
    if (chunk.length > 0) {
      pending.push(chunk);
      length += chunk.length;
    }
  }
  if (length > 0) yield Buffer.concat(pending);
}

/**
 * Runs `fn` over items, at most `limit` at once. The first failure aborts the others
 * (through the signal handed to `fn`) and is the one thrown.
 */
async function runLimited<T>(
  items: T[],
  limit: number,
  outer: AbortSignal | undefined,
  // `release` lets a task give up its slot before it ends (a download whose bytes are all
  // in, waiting on the disk), so the next one starts meanwhile.
  fn: (item: T, signal: AbortSignal, release: () => void) => Promise<void>,
): Promise<void> {
  const controller = new AbortController();
  const onAbort = () => controller.abort(outer?.reason);
  outer?.addEventListener('abort', onAbort, { once: true });
  let next = 0;
  let failure: { error: unknown } | undefined;
  const tasks: Promise<void>[] = [];
  const worker = async (): Promise<void> => {
    while (!failure && next < items.length) {
      const item = items[next++]!;
      if (controller.signal.aborted) {
        failure ??= { error: outer?.reason ?? new Error('aborted') };
        return;
      }
      let release = () => {};
      const released = new Promise<void>((r) => {
        release = r;
      });
      const task = fn(item, controller.signal, release).catch((e) => {
        if (!failure) failure = { error: e };
        controller.abort(e);
      });
      tasks.push(task);
      await Promise.race([task, released]);
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
    await Promise.all(tasks);
  } finally {
    outer?.removeEventListener('abort', onAbort);
  }
  if (failure) throw failure.error;
}
