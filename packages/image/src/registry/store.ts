import { isImageError } from '../errors.js';
import type { BlobExpectation } from '../store/blob-writer.js';
import type { ContentStore } from '../store/content.js';
import type { ImageStore } from '../store/image-store.js';
import { MAX_MANIFEST_BYTES } from '../store/limits.js';
import { formatReference, parseReference } from '../store/reference.js';
import { isNoSpace } from '../store/space.js';
import type { ImageRecord } from '../store/types.js';
import type { PullOptions, PullResult, PushOptions, PushResult, RegistryClient } from './client.js';

/**
 * `corral pull NAME`: pulls into the store's content store, unpacking each layer as soon as
 * its blob is in (while the others download), then registers the image under NAME when
 * NAME has a tag.
 */
export async function pullToStore(
  client: RegistryClient,
  store: ImageStore,
  name: string,
  opts: PullOptions = {},
): Promise<{ record: ImageRecord; pulled: PullResult }> {
  const ref = parseReference(name);
  // One write session, so a concurrent prune leaves the new blobs alone until they are registered.
  return store.session(async () => {
    const unpacker = store.layerUnpacker();
    const blobs = new Set<string>();
    const layers = new Set<string>();
    try {
      let pulled: PullResult;
      try {
        pulled = await client.pull(ref, noting(store.content, blobs), {
          ...opts,
          onLayer: (layer, diffId) => {
            if (diffId) {
              if (!store.hasLayer(diffId)) layers.add(diffId);
              unpacker.add({ digest: layer.digest, diffId });
            }
            opts.onLayer?.(layer, diffId);
          },
        });
      } catch (e) {
        // No unpack goes on once the pull has failed and the session ends.
        await unpacker.done().catch(() => {});
        throw e;
      }
      await unpacker.done();
      const names = ref.tag ? [formatReference({ ...ref, digest: undefined })] : [];
      const record = await store.importFromBlobs({
        manifestDigest: pulled.digest,
        names,
        indexDigest: pulled.index?.digest,
      });
      return { record, pulled };
    } catch (e) {
      // An interrupted pull keeps its whole layers for the next try; a full disk gets back
      // all this pull took, so the store is as it was.
      if (isNoSpace(e) || isImageError(e, 'NO_SPACE')) {
        await store.discardLayers(layers);
        await store.discardBlobs(blobs);
      }
      throw e;
    }
  });
}

/** The content store as a pull's sink, noting every blob the pull writes in `into`. */
function noting(content: ContentStore, into: Set<string>): ContentStore {
  return new Proxy(content, {
    get(target, key) {
      if (key === 'createWriter')
        return (expected: BlobExpectation = {}) => {
          if (expected.digest) into.add(expected.digest);
          return target.createWriter(expected);
        };
      if (key === 'writeBlob')
        return async (...args: Parameters<ContentStore['writeBlob']>) => {
          const info = await target.writeBlob(...args);
          into.add(info.digest);
          return info;
        };
      const value = Reflect.get(target, key, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

/** `corral push NAME [REMOTE]`: pushes a stored image (its manifest, config and layers) to NAME or REMOTE. */
export async function pushFromStore(
  client: RegistryClient,
  store: ImageStore,
  name: string,
  remote: string = name,
  opts: PushOptions = {},
): Promise<PushResult> {
  const blobs = store.imageBlobs(name);
  const manifest = await store.content.readBlob(blobs.manifest.digest, {
    bytes: MAX_MANIFEST_BYTES,
    what: `manifest ${blobs.manifest.digest}`,
  });
  return client.push(
    parseReference(remote),
    { manifest, mediaType: blobs.manifest.mediaType },
    store.content,
    opts,
  );
}
