import type { Readable, Writable } from 'node:stream';
import {
  ensureBusyboxImage,
  type ImageRecord,
  type ImageSummary,
  importRootfs,
  type LoadResult,
  loadArchive,
  type ProgressEvent,
  type PruneResult,
  pullToStore,
  pushFromStore,
  RegistryClient,
  type RemoveResult,
  saveArchive,
} from '@corral/image';
import type { EngineContext } from './context.js';
import { isBusybox } from './create.js';
import { engineOp } from './errors.js';

/** A registry client with the engine's registry settings. */
function registryClient(ctx: EngineContext): RegistryClient {
  const r = ctx.registry;
  return new RegistryClient({ insecureRegistries: r.insecureRegistries, configPath: r.credentialsFile });
}

/** docker pull into the engine's store (also create's pull of a missing image), with its event. */
export async function pullImage(
  ctx: EngineContext,
  name: string,
  options: { platform?: string; onProgress?: (e: ProgressEvent) => void } = {},
): Promise<ImageRecord> {
  const { record } = await engineOp(() => pullToStore(registryClient(ctx), ctx.store, name, options));
  ctx.events.emit('image', 'pull', record.id, { name });
  return record;
}

/**
 * Images through the engine (Docker's image endpoints): the store's safety rules are applied
 * here, once for both front-ends: an image a container uses is not removed or pruned, the
 * embedded busybox is made when first named, registry settings are the engine's.
 */
export class EngineImages {
  readonly #ctx: EngineContext;

  constructor(ctx: EngineContext) {
    this.#ctx = ctx;
  }

  private get store() {
    return this.#ctx.store;
  }

  private client(): RegistryClient {
    return registryClient(this.#ctx);
  }

  /** True when a container (any state) was made from the image with this id. */
  inUse(imageId: string): boolean {
    const records = this.#ctx.records;
    return records.ids().some((id) => records.read(id)?.imageId === imageId);
  }

  /** Makes the embedded images among `refs` that this data root does not have yet. */
  async ensureEmbedded(refs: readonly string[]): Promise<void> {
    for (const ref of refs)
      if (isBusybox(ref) && !this.store.resolve(ref)) await ensureBusyboxImage(this.store);
  }

  list(): ImageSummary[] {
    return this.store.list();
  }

  resolve(ref: string): ImageRecord | undefined {
    return this.store.resolve(ref);
  }

  async inspect(ref: string): Promise<Record<string, unknown>> {
    await this.ensureEmbedded([ref]);
    return engineOp(() => this.store.inspect(ref));
  }

  async history(ref: string) {
    await this.ensureEmbedded([ref]);
    return engineOp(() => this.store.history(ref));
  }

  async tag(source: string, target: string): Promise<void> {
    await this.ensureEmbedded([source]);
    await engineOp(() => this.store.tag(source, target));
    this.#ctx.events.emit('image', 'tag', this.store.resolve(target)?.id ?? target, { name: target });
  }

  /** docker rmi: refused while a container uses the image, unless `force`. */
  async remove(ref: string, options: { force?: boolean } = {}): Promise<RemoveResult> {
    const r = await engineOp(() =>
      this.store.remove(ref, { force: options.force === true, isInUse: (id) => this.inUse(id) }),
    );
    for (const u of r.untagged) this.#ctx.events.emit('image', 'untag', r.deleted[0] ?? u, { name: u });
    for (const d of r.deleted) this.#ctx.events.emit('image', 'delete', d, { name: ref });
    return r;
  }

  /** docker image prune: dangling images (every unused one with `all`) and unreferenced layers. */
  async prune(options: { all?: boolean } = {}): Promise<PruneResult> {
    const r = await engineOp(() =>
      this.store.prune({ all: options.all === true, isInUse: (id) => this.inUse(id) }),
    );
    for (const d of r.deletedImages) this.#ctx.events.emit('image', 'delete', d, {});
    return r;
  }

  /** docker load: a docker-archive or OCI layout tar (a file path or a stream). */
  async load(input: string | Readable): Promise<LoadResult> {
    const r = await engineOp(() => loadArchive(this.store, input));
    for (const img of r.images)
      this.#ctx.events.emit('image', 'load', img.id, { name: img.names[0] ?? img.id });
    return r;
  }

  /** docker save: images as one docker-archive tar. */
  async save(refs: string[], output: Writable): Promise<void> {
    await this.ensureEmbedded(refs);
    await engineOp(() => saveArchive(this.store, refs, output));
    for (const ref of refs)
      this.#ctx.events.emit('image', 'save', this.store.resolve(ref)?.id ?? ref, { name: ref });
  }

  /** docker import: a root filesystem tarball as a one-layer image. */
  async import(source: string | Readable, options: { names?: string[] } = {}): Promise<ImageRecord> {
    const rec = await engineOp(() => importRootfs(this.store, source, { names: options.names ?? [] }));
    this.#ctx.events.emit('image', 'import', rec.id, { name: options.names?.[0] ?? rec.id });
    return rec;
  }

  /** docker pull; resolves with the digest the name points at (the index's for a multi-platform image). */
  async pull(
    name: string,
    options: { platform?: string; onProgress?: (e: ProgressEvent) => void } = {},
  ): Promise<{ record: ImageRecord; digest: string }> {
    const record = await pullImage(this.#ctx, name, options);
    return { record, digest: record.indexDigest ?? record.manifestDigest };
  }

  /** docker push. */
  async push(
    name: string,
    options: { onProgress?: (e: ProgressEvent) => void } = {},
  ): Promise<{ digest: string }> {
    await this.ensureEmbedded([name]);
    const result = await engineOp(() => pushFromStore(this.client(), this.store, name, name, options));
    this.#ctx.events.emit('image', 'push', this.store.resolve(name)?.id ?? name, { name });
    return { digest: result.digest };
  }

  /** docker login: checks the credentials with the registry and keeps them in the credentials file. */
  async login(server: string, username: string, password: string): Promise<void> {
    await engineOp(() => this.client().login(server, username, password));
  }
}
