import { ImageError } from '../errors.js';
import { isDigest } from './digest.js';
import { MAX_MANIFEST_BYTES, tooBig } from './limits.js';
import { isLayerMediaType, type Manifest } from './types.js';

/** Parses and checks an image manifest (not an index). */
export function parseManifest(bytes: Buffer, digest: string): Manifest {
  if (bytes.length > MAX_MANIFEST_BYTES) throw tooBig(`manifest ${digest}`, bytes.length, MAX_MANIFEST_BYTES);
  let m: Manifest;
  try {
    m = JSON.parse(bytes.toString('utf8')) as Manifest;
  } catch (e) {
    throw new ImageError('BAD_MANIFEST', `manifest ${digest} is not valid JSON: ${(e as Error).message}`);
  }
  if (m?.schemaVersion !== 2 || !m.config || !Array.isArray(m.layers)) {
    const what =
      m && 'manifests' in (m as object) ? 'an index, not an image manifest' : 'not a schema 2 image manifest';
    throw new ImageError('BAD_MANIFEST', `manifest ${digest} is ${what}`);
  }
  for (const d of [m.config, ...m.layers]) {
    if (!d || typeof d.digest !== 'string' || !isDigest(d.digest) || typeof d.size !== 'number') {
      throw new ImageError('BAD_MANIFEST', `manifest ${digest} has a bad descriptor: ${JSON.stringify(d)}`);
    }
  }
  for (const l of m.layers) {
    if (!isLayerMediaType(l.mediaType)) {
      throw new ImageError('UNSUPPORTED', `manifest ${digest}: unsupported layer media type ${l.mediaType}`);
    }
  }
  return m;
}
