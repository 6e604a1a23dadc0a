import type { ImageStore } from '../store/image-store.js';
import { MAX_MANIFEST_BYTES } from '../store/limits.js';
import { formatReference, parseReference } from '../store/reference.js';
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
    let pulled: PullResult;
    try {
      pulled = await client.pull(ref, store.content, {
        ...opts,
        onLayer: (layer, diffId) => {
          if (diffId) unpacker.add({ digest: layer.digest, diffId });
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
