import type { Readable } from 'node:stream';
import { isImageError } from '../errors.js';
import type { BlobInfo, BlobWriter } from '../store/blob-writer.js';
import { isDigest } from '../store/digest.js';
import { formatBytes as formatSize, MAX_CONFIG_BYTES } from '../store/limits.js';
import type { Reference } from '../store/reference.js';
import type { Descriptor } from '../store/types.js';
import { runLimited } from '../task-group.js';
import type { Authorizer } from './authorizer.js';
import { getInto } from './blob-download.js';
import { DigestMismatchError, isRegistryError, RegistryError } from './errors.js';
import { isValidDigest } from './hosts.js';
import { DigestVerifier, discard, networkError } from './http.js';
import { formatPlatform, normalizePlatform, parsePlatform, uniqueByDigest } from './manifest.js';
import { progressEvent } from './progress.js';
import type { Resolver } from './resolver.js';
import { type Context, familiar, scopesFor, type Transport } from './transport.js';
import type { BlobSink, PullOptions, PullResult } from './types.js';

/** Tries per layer when the connection drops. */
const PULL_ATTEMPTS = 3;

/**
 * The fetcher (containerd's docker.Fetcher): blobs read, streamed or downloaded into a sink,
 * each verified against its descriptor, and a whole image pulled: the config, then the layers
 * a few at a time (those the sink has are skipped), then the manifest and index bytes.
 */
export class Fetcher {
  constructor(
    private readonly transport: Transport,
    private readonly authorizer: Authorizer,
    private readonly resolver: Resolver,
  ) {}

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
    const res = await this.transport.request(ctx, 'HEAD', `/v2/${repository}/blobs/${digest}`);
    discard(res);
    if (res.status === 200) return true;
    if (res.status === 404) return false;
    throw await this.transport.failure(res, ctx, 'blob');
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
    const res = await this.transport.request(ctx, 'GET', `/v2/${repository}/blobs/${desc.digest}`, {
      signal: opts.signal,
    });
    if (res.status !== 200) throw await this.transport.failure(res, ctx, 'blob');
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
      const state = await this.transport.host(registry);
      const url = new URL(`/v2/${repository}/blobs/${desc.digest}`, state.base);
      const auth = await this.authorizer.authorization(registry, state.challenge, scopesFor(ctx));
      const got = await getInto(url, writer, {
        headers: this.transport.withUserAgent(auth ? { Authorization: auth } : {}),
        insecureTls: state.insecureTls,
        secureContext: this.transport.settings.secureContext?.(),
        signal,
        timeoutMs: this.transport.settings.timeoutMs,
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
    const res = await this.transport.request(ctx, 'GET', `/v2/${repository}/blobs/${desc.digest}`, {
      signal,
    });
    if (res.status !== 200) throw await this.transport.failure(res, ctx, 'blob');
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
    const resolved = await this.resolver.resolve(ref, opts);
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
    for (const l of layers) emit(progressEvent(l, 'layer', 'waiting', 0));
    // A sink that hashes what it writes and refuses a mismatch needs no second hash here.
    const sinkVerifies = sink.verifiesDigest === true;
    let bytesDownloaded = 0;
    await runLimited(layers, opts.concurrency ?? 3, opts.signal, async (layer, signal, release) => {
      if (await sink.hasBlob(layer.digest)) {
        emit(progressEvent(layer, 'layer', 'exists', layer.size));
        layerIn(layer);
        return;
      }
      for (let attempt = 1; ; attempt++) {
        emit(progressEvent(layer, 'layer', 'downloading', 0));
        try {
          const onBytes = (n: number) => emit(progressEvent(layer, 'layer', 'downloading', n));
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
            emit(progressEvent(layer, 'layer', 'retrying', 0));
            await new Promise((r) => setTimeout(r, 250 * attempt));
            continue;
          }
          emit(progressEvent(layer, 'layer', 'failed', 0));
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
      emit(progressEvent(layer, 'layer', 'done', layer.size));
      layerIn(layer);
    });
    if (!(await sink.hasBlob(manifest.config.digest))) {
      await sink.writeBlob(configBytes, { digest: manifest.config.digest, size: manifest.config.size });
    }
    emit(progressEvent(manifest.config, 'config', 'done', manifest.config.size));
    await storeBytes(sink, resolved.bytes, resolved.digest);
    if (resolved.index) await storeBytes(sink, resolved.index.bytes, resolved.index.digest);
    emit(
      progressEvent(
        { digest: resolved.digest, size: resolved.bytes.length },
        'manifest',
        'done',
        resolved.bytes.length,
      ),
    );
    return { ...resolved, config, configBytes, bytesDownloaded };
  }
}

async function storeBytes(sink: BlobSink, bytes: Buffer, digest: string): Promise<void> {
  if (await sink.hasBlob(digest)) return;
  if (!digest.startsWith('sha256:')) return;
  await sink.writeBlob(bytes, { digest, size: bytes.length });
}
