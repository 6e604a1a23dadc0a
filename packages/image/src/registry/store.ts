import type { ImageStore } from '../store/image-store.js';
import { formatReference, parseReference } from '../store/reference.js';
import type { ImageRecord } from '../store/types.js';
import type { PullOptions, PullResult, PushOptions, PushResult, RegistryClient } from './client.js';

/**
 * `corral pull NAME`: pulls into the store's content store, then registers the image
 * (unpacking its layers) under NAME when NAME has a tag.
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
    const pulled = await client.pull(ref, store.content, opts);
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
  const manifest = await store.content.readBlob(blobs.manifest.digest);
  return client.push(
    parseReference(remote),
    { manifest, mediaType: blobs.manifest.mediaType },
    store.content,
    opts,
  );
}
