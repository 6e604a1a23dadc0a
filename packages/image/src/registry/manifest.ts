import { createHash } from 'node:crypto';
import { type ManifestRules, parseIndexWith, parseManifestWith } from '../manifest.js';
import { type Descriptor, type ImageIndex, type Manifest, MediaType, type Platform } from '../store/types.js';
import { RegistryError } from './errors.js';

/** Every manifest kind we read, in the order we prefer them; sent as the Accept header. */
export const MANIFEST_ACCEPT = [
  MediaType.OciIndex,
  MediaType.DockerManifestList,
  MediaType.OciManifest,
  MediaType.DockerManifest,
].join(', ');

const SCHEMA1 = /^application\/vnd\.docker\.distribution\.manifest\.v1\+(?:prettyjws|json)$/;

export type ManifestKind = 'manifest' | 'index';

/** Digest of `data` with the algorithm named by `like` (sha256 or sha512). */
export function digestWithAlgorithm(data: Buffer, like: string): string {
  const algorithm = like.split(':', 1)[0] === 'sha512' ? 'sha512' : 'sha256';
  return `${algorithm}:${createHash(algorithm).update(data).digest('hex')}`;
}

/** Whether a media type (or a manifest's shape when the type is missing) is an image or an index. */
export function manifestKind(mediaType: string | undefined, json: unknown): ManifestKind {
  if (mediaType && SCHEMA1.test(mediaType)) {
    throw new RegistryError(
      'UNSUPPORTED_MANIFEST',
      `Docker schema 1 manifests (${mediaType}) are not supported: push the image again with a current client to get schema 2`,
    );
  }
  if (mediaType === MediaType.OciIndex || mediaType === MediaType.DockerManifestList) return 'index';
  if (mediaType === MediaType.OciManifest || mediaType === MediaType.DockerManifest) return 'manifest';
  const obj = json as Record<string, unknown> | null;
  if (obj && Array.isArray(obj['manifests'])) return 'index';
  if (obj?.['config'] && Array.isArray(obj['layers'])) return 'manifest';
  throw new RegistryError(
    'UNSUPPORTED_MANIFEST',
    `unsupported manifest media type "${mediaType ?? '(none)'}"`,
  );
}

/** True for the media types of manifests and indexes (schema 1 too, to refuse it clearly). */
export function isManifestType(t: string): boolean {
  return (
    t === MediaType.DockerManifest ||
    t === MediaType.DockerManifestList ||
    t === MediaType.OciManifest ||
    t === MediaType.OciIndex ||
    /^application\/vnd\.docker\.distribution\.manifest\.v1\+/.test(t)
  );
}

/** The media type of a manifest that names none: OCI, or Docker's when its config is Docker's. */
export function defaultMediaType(kind: ManifestKind, json: unknown): string {
  const configType = (json as { config?: { mediaType?: string } })?.config?.mediaType;
  if (kind === 'index') return MediaType.OciIndex;
  return configType === MediaType.DockerConfig ? MediaType.DockerManifest : MediaType.OciManifest;
}

/** Descriptors with the same digest once (a layer may appear twice in a manifest). */
export function uniqueByDigest<T extends { digest: string }>(items: T[]): T[] {
  const seen = new Set<string>();
  return items.filter((i) => {
    if (seen.has(i.digest)) return false;
    seen.add(i.digest);
    return true;
  });
}

/** Registry errors for the package's manifest parser: INVALID_MANIFEST, UNSUPPORTED_MANIFEST. */
const registryFault = (what: string): ManifestRules => ({
  what,
  fail: (fault, message) =>
    new RegistryError(fault === 'invalid' ? 'INVALID_MANIFEST' : 'UNSUPPORTED_MANIFEST', message),
});

/** Parses and checks an image manifest's JSON (see parseManifestWith). */
export function parseImageManifest(bytes: Buffer | string): Manifest {
  return parseManifestWith(bytes, registryFault('manifest'));
}

/** Parses and checks a manifest list / image index's JSON. */
export function parseImageIndex(bytes: Buffer | string): ImageIndex {
  return parseIndexWith(bytes, registryFault('index'));
}

const ARCH_ALIASES: Record<string, string> = {
  x86_64: 'amd64',
  'x86-64': 'amd64',
  x64: 'amd64',
  aarch64: 'arm64',
  ia32: '386',
  i386: '386',
  x32: '386',
  armhf: 'arm',
  armel: 'arm',
  ppc64: 'ppc64',
  ppc64le: 'ppc64le',
  mips64el: 'mips64le',
};

/** Normalises an architecture and variant the way containerd does (aarch64 -> arm64, arm64/v8 -> arm64). */
export function normalizePlatform(p: Platform): Platform {
  const os = p.os.toLowerCase();
  const rawArch = p.architecture.toLowerCase();
  let architecture = ARCH_ALIASES[rawArch] ?? rawArch;
  let variant = p.variant?.toLowerCase() || undefined;
  if (rawArch === 'armhf' && !variant) variant = 'v7';
  if (rawArch === 'armel' && !variant) variant = 'v6';
  if (architecture === 'arm64' && (variant === 'v8' || variant === '8')) variant = undefined;
  if (architecture === 'arm' && variant && /^\d$/.test(variant)) variant = `v${variant}`;
  if (architecture === 'arm' && !variant) variant = 'v7';
  if (architecture === 'amd64' && variant === 'v1') variant = undefined;
  if (architecture === 'aarch64') architecture = 'arm64';
  return variant === undefined ? { os, architecture } : { os, architecture, variant };
}

/** The platform this process runs on, in OCI terms (`linux/amd64`, `linux/arm64`, `linux/arm/v7`). */
export function hostPlatform(): Platform {
  const architecture = ARCH_ALIASES[process.arch] ?? process.arch;
  if (architecture === 'arm') {
    const v = (process.config.variables as Record<string, unknown>)['arm_version'];
    return {
      os: 'linux',
      architecture,
      variant: `v${typeof v === 'string' || typeof v === 'number' ? v : 7}`,
    };
  }
  return { os: 'linux', architecture };
}

/** Parses `os/arch[/variant]` (`linux/arm64`, `linux/arm/v7`); the os defaults to linux when only an arch is given. */
export function parsePlatform(text: string): Platform {
  const parts = text.trim().split('/');
  if (parts.some((p) => p === '') || parts.length > 3) {
    throw new RegistryError(
      'INVALID_PLATFORM',
      `invalid platform "${text}": expected OS/ARCH[/VARIANT], e.g. linux/amd64 or linux/arm/v7`,
    );
  }
  if (parts.length === 1) return normalizePlatform({ os: 'linux', architecture: parts[0]! });
  const [os, architecture, variant] = parts as [string, string, string | undefined];
  return normalizePlatform(variant === undefined ? { os, architecture } : { os, architecture, variant });
}

export function formatPlatform(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/');
}

/**
 * Picks the manifest for `wanted` from an index: an exact os/arch/variant match first, then,
 * for arm, an older variant that the wanted one can run (v7 runs v6 and v5). Attestation
 * entries (`unknown/unknown`) never match.
 */
export function selectPlatform(index: ImageIndex, wanted: Platform): Descriptor | undefined {
  const want = normalizePlatform(wanted);
  const candidates = index.manifests.filter(
    (m) =>
      m.platform &&
      m.annotations?.['vnd.docker.reference.type'] !== 'attestation-manifest' &&
      m.mediaType !== MediaType.OciIndex &&
      m.mediaType !== MediaType.DockerManifestList,
  );
  const norm = candidates.map((m) => ({ m, p: normalizePlatform(m.platform!) }));
  const same = norm.filter(({ p }) => p.os === want.os && p.architecture === want.architecture);
  const exact = same.find(({ p }) => p.variant === want.variant);
  if (exact) return exact.m;
  if (want.architecture === 'arm' && want.variant) {
    const level = Number(want.variant.slice(1));
    for (let v = level - 1; v >= 5; v--) {
      const older = same.find(({ p }) => p.variant === `v${v}`);
      if (older) return older.m;
    }
  }
  // An entry without a variant where one was asked for still runs (arm64 lists often omit v8).
  return same.find(({ p }) => p.variant === undefined && want.architecture !== 'arm')?.m;
}

/** The platforms an index offers, for error messages. */
export function listPlatforms(index: ImageIndex): string[] {
  return index.manifests.filter((m) => m.platform).map((m) => formatPlatform(m.platform!));
}
