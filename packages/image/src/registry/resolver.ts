import { sha256 } from '../store/digest.js';
import { MAX_MANIFEST_BYTES } from '../store/limits.js';
import { formatReference, type Reference } from '../store/reference.js';
import type { Platform } from '../store/types.js';
import { DigestMismatchError, RegistryError } from './errors.js';
import { discard, headerDigest, readBody } from './http.js';
import {
  defaultMediaType,
  digestWithAlgorithm,
  formatPlatform,
  hostPlatform,
  isManifestType,
  listPlatforms,
  MANIFEST_ACCEPT,
  manifestKind,
  parseImageIndex,
  parseImageManifest,
  parsePlatform,
  selectPlatform,
} from './manifest.js';
import { type Context, familiar, type Transport } from './transport.js';
import type { FetchedManifest, ResolvedImage } from './types.js';

/**
 * The resolver (containerd's docker.Resolver): a reference to the manifest it names, every
 * manifest checked against the digest asked for and the one the registry announces, and an
 * index resolved to the image of one platform.
 */
export class Resolver {
  constructor(private readonly transport: Transport) {}

  /** Fetches a manifest or index as stored, verified against its digest. */
  async getManifest(ref: Reference, opts: { signal?: AbortSignal } = {}): Promise<FetchedManifest> {
    const ctx: Context = {
      registry: ref.domain,
      repository: ref.path,
      action: 'pull',
      what: familiar(ref),
    };
    const tagOrDigest = ref.digest ?? ref.tag ?? 'latest';
    const res = await this.transport.request(ctx, 'GET', `/v2/${ref.path}/manifests/${tagOrDigest}`, {
      headers: { Accept: MANIFEST_ACCEPT },
      signal: opts.signal,
    });
    if (res.status !== 200) throw await this.transport.failure(res, ctx, 'manifest');
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
    const res = await this.transport.request(
      ctx,
      'HEAD',
      `/v2/${ref.path}/manifests/${ref.digest ?? ref.tag ?? 'latest'}`,
      {
        headers: { Accept: MANIFEST_ACCEPT },
      },
    );
    discard(res);
    if (res.status === 404) return undefined;
    if (res.status !== 200) throw await this.transport.failure(res, ctx, 'manifest');
    return {
      digest: headerDigest(res),
      mediaType: (res.headers['content-type'] ?? '').split(';', 1)[0]!.trim(),
      size: Number(res.headers['content-length'] ?? 0),
    };
  }
}
