import { pipeline, type Readable } from 'node:stream';
import { sha256 } from '../store/digest.js';
import { formatReference, type Reference } from '../store/reference.js';
import type { Descriptor, Manifest } from '../store/types.js';
import { runLimited } from '../task-group.js';
import { DigestMismatchError, RegistryError } from './errors.js';
import { DigestVerifier, discard, type HttpResponse, headerDigest, headerValue } from './http.js';
import {
  defaultMediaType,
  manifestKind,
  parseImageIndex,
  parseImageManifest,
  uniqueByDigest,
} from './manifest.js';
import { type ProgressEvent, progressEvent } from './progress.js';
import { type Context, familiar, type Transport } from './transport.js';
import type { BlobProvider, PushImage, PushOptions, PushResult } from './types.js';

/**
 * The pusher (containerd's docker.Pusher): blobs the repository has are skipped (HEAD),
 * others mounted from another repository or uploaded (one PUT, or PATCHes then a PUT), then
 * each manifest is PUT and the digest the registry answers is checked against ours.
 */
export class Pusher {
  constructor(private readonly transport: Transport) {}

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
    const res = await this.transport.request(
      ctx,
      'PUT',
      `/v2/${ref.path}/manifests/${ref.tag ?? ref.digest}`,
      {
        headers: { 'Content-Type': mediaType },
        body: bytes,
      },
    );
    if (res.status !== 201 && res.status !== 200) throw await this.transport.failure(res, ctx, 'manifest');
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
      emit(progressEvent(desc, kind, 'exists', desc.size));
      return 'exists';
    }
    const query = opts.mountFrom
      ? `?mount=${encodeURIComponent(desc.digest)}&from=${encodeURIComponent(opts.mountFrom)}`
      : '';
    const start = await this.transport.request(ctx, 'POST', `/v2/${ref.path}/blobs/uploads/${query}`, {
      body: Buffer.alloc(0),
      extraScopes: extra,
    });
    if (start.status === 201 && opts.mountFrom) {
      discard(start);
      emit(progressEvent(desc, kind, 'mounted', desc.size));
      return 'mounted';
    }
    if (start.status !== 202) throw await this.transport.failure(start, ctx, 'upload');
    discard(start);
    let location = uploadLocation(start);
    emit(progressEvent(desc, kind, 'uploading', 0));
    const what = `blob ${desc.digest} (local copy)`;
    const open = (): Readable => {
      const verifier = new DigestVerifier(desc.digest, desc.size, what, (n) =>
        emit(progressEvent(desc, kind, 'uploading', n)),
      );
      return pipeline(source.openBlob(desc.digest), verifier, () => {});
    };
    try {
      let done: HttpResponse;
      if (opts.chunkSize && opts.chunkSize > 0) {
        let offset = 0;
        for await (const chunk of chunks(open(), opts.chunkSize)) {
          const res = await this.transport.request(ctx, 'PATCH', location, {
            headers: {
              'Content-Type': 'application/octet-stream',
              'Content-Range': `${offset}-${offset + chunk.length - 1}`,
            },
            body: chunk,
            signal: opts.signal,
          });
          if (res.status !== 202) throw await this.transport.failure(res, ctx, 'upload');
          discard(res);
          location = uploadLocation(res);
          offset += chunk.length;
        }
        done = await this.transport.request(ctx, 'PUT', withDigest(location, desc.digest), {
          body: Buffer.alloc(0),
          signal: opts.signal,
        });
      } else {
        done = await this.transport.request(ctx, 'PUT', withDigest(location, desc.digest), {
          headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(desc.size) },
          body: open,
          signal: opts.signal,
        });
      }
      if (done.status !== 201) throw await this.transport.failure(done, ctx, 'upload');
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
      await this.transport
        .request(ctx, 'DELETE', location)
        .then(discard)
        .catch(() => {});
      throw e;
    }
    emit(progressEvent(desc, kind, 'done', desc.size));
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
    for (const { d, kind } of items) opts.onProgress?.(progressEvent(d, kind, 'waiting', 0));
    await runLimited(items, opts.concurrency ?? 4, opts.signal, async ({ d, kind }, signal) => {
      const outcome = await this.pushBlob(ref, d, source, { ...opts, signal, kind });
      out.push({ digest: d.digest, outcome });
    });
    return out;
  }

  private async hasBlobFor(ctx: Context, digest: string, extraScopes: string[]): Promise<boolean> {
    const res = await this.transport.request(ctx, 'HEAD', `/v2/${ctx.repository}/blobs/${digest}`, {
      extraScopes,
    });
    discard(res);
    if (res.status === 200) return true;
    if (res.status === 404) return false;
    throw await this.transport.failure(res, ctx, 'blob');
  }
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
