import { isDigest } from './store/digest.js';
import { type Descriptor, type ImageIndex, isLayerMediaType, type Manifest } from './store/types.js';

/**
 * What is wrong with a manifest or an index: malformed (`invalid`), a schema other than 2
 * (`version`), or a layer of a media type that cannot be unpacked (`layer-type`).
 */
export type ManifestFault = 'invalid' | 'version' | 'layer-type';

/** How one caller reads manifests: the registry client and the image store differ only here. */
export interface ManifestRules {
  /** The document in messages: `manifest sha256:...`, `index`. */
  what: string;
  /** The error to throw for a fault: each caller keeps its own error type and codes. */
  fail: (fault: ManifestFault, message: string) => Error;
  /** Only `sha256:<64 hex>` digests (what a content store addresses by). */
  sha256Only?: boolean;
  /** Layers must have a media type corral unpacks. */
  knownLayerTypes?: boolean;
}

/**
 * The package's one manifest parser: an image manifest's JSON, checked for schema 2, a config
 * descriptor and a layer list, every descriptor with a media type, a well-formed digest and a
 * size. The image store and the registry client call it with their own rules and errors.
 */
export function parseManifestWith(bytes: Buffer | string, rules: ManifestRules): Manifest {
  const json = parseObject(bytes, rules);
  if (Array.isArray(json['manifests'])) {
    throw rules.fail('invalid', `${rules.what} is an index, not an image manifest`);
  }
  checkVersion(json, rules);
  checkDescriptor(json['config'], 'its config', rules);
  if (!Array.isArray(json['layers'])) throw rules.fail('invalid', `${rules.what} has no layers list`);
  json['layers'].forEach((l: unknown, i: number) => {
    const d = checkDescriptor(l, `layer ${i}`, rules);
    if (rules.knownLayerTypes && !isLayerMediaType(d.mediaType)) {
      throw rules.fail('layer-type', `${rules.what}: unsupported layer media type ${d.mediaType}`);
    }
  });
  return json as unknown as Manifest;
}

/** The same for an image index (manifest list): schema 2 and a list of descriptors. */
export function parseIndexWith(bytes: Buffer | string, rules: ManifestRules): ImageIndex {
  const json = parseObject(bytes, rules);
  checkVersion(json, rules);
  if (!Array.isArray(json['manifests'])) throw rules.fail('invalid', `${rules.what} has no manifests list`);
  json['manifests'].forEach((m: unknown, i: number) => {
    checkDescriptor(m, `manifest ${i}`, rules);
  });
  return json as unknown as ImageIndex;
}

function parseObject(bytes: Buffer | string, rules: ManifestRules): Record<string, unknown> {
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString());
  } catch (e) {
    throw rules.fail('invalid', `${rules.what} is not valid JSON: ${(e as Error).message}`);
  }
  if (!json || typeof json !== 'object' || Array.isArray(json)) {
    throw rules.fail('invalid', `${rules.what} is not a JSON object`);
  }
  return json as Record<string, unknown>;
}

function checkVersion(json: Record<string, unknown>, rules: ManifestRules): void {
  if (json['schemaVersion'] !== 2) {
    throw rules.fail(
      'version',
      `${rules.what} has schemaVersion ${String(json['schemaVersion'])}; only schema 2 is supported`,
    );
  }
}

const ANY_DIGEST = /^[a-z0-9]+:[a-f0-9]+$/;

function checkDescriptor(d: unknown, where: string, rules: ManifestRules): Descriptor {
  const o = d as Record<string, unknown> | null;
  if (
    !o ||
    typeof o !== 'object' ||
    typeof o['mediaType'] !== 'string' ||
    typeof o['digest'] !== 'string' ||
    typeof o['size'] !== 'number' ||
    !Number.isSafeInteger(o['size']) ||
    (o['size'] as number) < 0
  ) {
    throw rules.fail('invalid', `${rules.what}: ${where} needs a mediaType, a digest and a size`);
  }
  const digest = o['digest'] as string;
  if (!(rules.sha256Only ? isDigest(digest) : ANY_DIGEST.test(digest))) {
    throw rules.fail('invalid', `${rules.what}: ${where} has a malformed digest "${digest}"`);
  }
  return o as unknown as Descriptor;
}
