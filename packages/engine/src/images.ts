import { pipeline, type Readable, Transform, type Writable } from 'node:stream';
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
import { applyChanges } from './changes.js';
import type { EngineContext } from './context.js';
import { isBusybox } from './create.js';
import { EngineError, engineOp, engineSync } from './errors.js';
import { fetchTarball } from './import-url.js';

/** Credentials that one pull or push brings along (Docker's X-Registry-Auth), over the stored ones. */
export interface RegistryAuth {
  username: string;
  password: string;
  /** An OAuth2 refresh token (Docker's `identitytoken`), traded at the token service in place of the password. */
  identityToken?: string;
  /** A bearer token for the registry (Docker's `registrytoken`), sent as it is. */
  registryToken?: string;
}

/** A registry client with the engine's registry settings (and a request's own credentials). */
function registryClient(ctx: EngineContext, auth?: RegistryAuth): RegistryClient {
  const r = ctx.registry;
  return new RegistryClient({
    insecureRegistries: r.insecureRegistries,
    configPath: r.credentialsFile,
    extraCaFile: r.extraCaFile,
    ...(auth ? { credentials: { ...auth } } : {}),
  });
}

/** docker pull into the engine's store (also create's pull of a missing image), with its event. */
export async function pullImage(
  ctx: EngineContext,
  name: string,
  options: {
    platform?: string;
    onProgress?: (e: ProgressEvent) => void;
    signal?: AbortSignal;
    auth?: RegistryAuth;
  } = {},
): Promise<ImageRecord> {
  const { auth, ...pull } = options;
  const { record } = await engineOp(() => pullToStore(registryClient(ctx, auth), ctx.store, name, pull));
  ctx.events.emit('image', 'pull', record.id, { name });
  return record;
}

const DURATION_UNITS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  ms: 1,
  s: 1e3,
  m: 6e4,
  h: 3.6e6,
};

/** Docker's `until` filter value as ms since the epoch: a time, Unix seconds, or a Go duration back from `now`. */
export function parseUntil(value: string, now = Date.now()): number {
  const v = value.trim();
  if (/^\d+(\.\d+)?$/.test(v)) return Number(v) * 1000;
  if (/^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/.test(v)) {
    let ms = 0;
    for (const [, n, unit] of v.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g))
      ms += Number(n) * DURATION_UNITS[unit]!;
    return now - ms;
  }
  const t = Date.parse(v);
  if (Number.isNaN(t))
    throw new EngineError(
      'InvalidArgument',
      `invalid until filter "${value}": a time (2006-01-02T15:04:05Z), Unix seconds, or a duration such as 24h`,
    );
  return t;
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
    return this.#ctx.imageUsers(imageId).length > 0;
  }

  /** Makes the embedded images among `refs` that this data root does not have yet. */
  async ensureEmbedded(refs: readonly string[]): Promise<void> {
    for (const ref of refs)
      if (isBusybox(ref) && !this.resolve(ref)) await engineOp(() => ensureBusyboxImage(this.store));
  }

  list(): ImageSummary[] {
    return engineSync(() => this.store.list());
  }

  resolve(ref: string): ImageRecord | undefined {
    return engineSync(() => this.store.resolve(ref));
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

  /**
   * docker rmi, with Docker's rules for images in use: refused (Conflict) while a running or
   * paused container uses the image, even with `force`; with only stopped containers on it,
   * `force` removes it and its layers stay until the last of those containers is removed.
   */
  async remove(ref: string, options: { force?: boolean } = {}): Promise<RemoveResult> {
    const r = await engineOp(() => this.store.remove(ref, { force: options.force === true }));
    for (const u of r.untagged) this.#ctx.events.emit('image', 'untag', r.deleted[0] ?? u, { name: u });
    for (const d of r.deleted) this.#ctx.events.emit('image', 'delete', d, { name: ref });
    return r;
  }

  /**
   * docker image prune: dangling images (every unused one with `all`) and unreferenced layers;
   * never an image a container uses. `until` (Docker's filter): only images created before it,
   * a time (RFC 3339, Unix seconds) or a duration back from now (`24h`, `1h30m`).
   */
  async prune(options: { all?: boolean; until?: string } = {}): Promise<PruneResult> {
    const until = options.until === undefined ? undefined : parseUntil(options.until);
    const r = await engineOp(() => this.store.prune({ all: options.all === true, until }));
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

  /**
   * docker import: a root filesystem tarball as a one-layer image, its config made by
   * `changes` (Dockerfile instructions, docker import --change) and its history's `message`.
   */
  async import(
    source: string | Readable,
    options: { names?: string[]; changes?: string[]; message?: string } = {},
  ): Promise<ImageRecord> {
    // Bad changes fail before a byte of the tarball is stored.
    const config = applyChanges({}, options.changes ?? []);
    const rec = await engineOp(() =>
      importRootfs(this.store, source, {
        names: options.names ?? [],
        config,
        ...(options.message ? { message: options.message } : {}),
      }),
    );
    this.#ctx.events.emit('image', 'import', rec.id, { name: options.names?.[0] ?? rec.id });
    return rec;
  }

  /**
   * docker import URL: fetches the tarball (http or https; a bare `host/path` is http, as
   * dockerd has it) and imports it as `import` does. A refused fetch fails before anything is
   * stored; a body cut short stores nothing. `onFetch` hears where from and how much so far.
   */
  async importUrl(
    src: string,
    options: {
      names?: string[];
      changes?: string[];
      message?: string;
      signal?: AbortSignal;
      onFetch?: (p: { url: string; current: number; total: number | null }) => void;
    } = {},
  ): Promise<ImageRecord> {
    applyChanges({}, options.changes ?? []); // bad changes fail before the fetch
    const t = await fetchTarball(src, options.signal);
    let current = 0;
    options.onFetch?.({ url: t.url, current, total: t.length });
    // Counted on its way (a Transform reads only as fast as the import takes it); an error of
    // the fetch (a body cut short) reaches the import through the pipeline.
    const counted = new Transform({
      transform(chunk: Buffer, _enc, done) {
        current += chunk.length;
        options.onFetch?.({ url: t.url, current, total: t.length });
        done(null, chunk);
      },
    });
    pipeline(t.body, counted, () => {});
    try {
      return await this.import(counted, options);
    } catch (e) {
      t.body.destroy();
      if (e instanceof EngineError && e.kind === 'InvalidArgument') throw e;
      throw new EngineError('Unavailable', `importing from ${t.url}: ${(e as Error).message}`);
    }
  }

  /** docker pull; resolves with the digest the name points at (the index's for a multi-platform image). */
  async pull(
    name: string,
    options: {
      platform?: string;
      onProgress?: (e: ProgressEvent) => void;
      /** Ends the pull: what it stored so far stays only where whole (layers), never an image. */
      signal?: AbortSignal;
      auth?: RegistryAuth;
    } = {},
  ): Promise<{ record: ImageRecord; digest: string }> {
    const record = await pullImage(this.#ctx, name, options);
    return { record, digest: record.indexDigest ?? record.manifestDigest };
  }

  /** docker push. */
  async push(
    name: string,
    options: { onProgress?: (e: ProgressEvent) => void; auth?: RegistryAuth } = {},
  ): Promise<{ digest: string }> {
    await this.ensureEmbedded([name]);
    const { auth, ...push } = options;
    const result = await engineOp(() =>
      pushFromStore(registryClient(this.#ctx, auth), this.store, name, name, push),
    );
    this.#ctx.events.emit('image', 'push', this.store.resolve(name)?.id ?? name, { name });
    return { digest: result.digest };
  }

  /**
   * docker login: checks the credentials with the registry and keeps them in the credentials
   * file; with `store: false` only checks them (a daemon's /auth: its client keeps them) and
   * resolves with the identity token (an OAuth2 refresh token) when the registry's token
   * service hands one out, for the client to keep in place of the password; `identityToken`
   * logs in with one kept so.
   */
  async login(
    server: string,
    username: string,
    password: string,
    options: { store?: boolean; identityToken?: string } = {},
  ): Promise<{ identityToken?: string }> {
    const client = this.client();
    if (options.store === false || options.identityToken) {
      const extra = options.identityToken ? { identityToken: options.identityToken } : {};
      return engineOp(() => client.checkLogin(server, username, password, extra));
    }
    await engineOp(() => client.login(server, username, password));
    return {};
  }
}
