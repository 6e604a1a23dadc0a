import { ImageError } from '../errors.js';
import { parseManifestWith } from '../manifest.js';
import { MAX_MANIFEST_BYTES, tooBig } from './limits.js';
import type { Manifest } from './types.js';

/**
 * Parses and checks an image manifest (not an index) for the store: sha256 digests and layer
 * types it can unpack; errors are ImageErrors (BAD_MANIFEST, UNSUPPORTED for a layer type).
 */
export function parseManifest(bytes: Buffer, digest: string): Manifest {
  if (bytes.length > MAX_MANIFEST_BYTES) throw tooBig(`manifest ${digest}`, bytes.length, MAX_MANIFEST_BYTES);
  return parseManifestWith(bytes, {
    what: `manifest ${digest}`,
    fail: (fault, message) =>
      new ImageError(fault === 'layer-type' ? 'UNSUPPORTED' : 'BAD_MANIFEST', message),
    sha256Only: true,
    knownLayerTypes: true,
  });
}
