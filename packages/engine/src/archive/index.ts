import type { Readable, Writable } from 'node:stream';
import type { EngineContext } from '../context.js';
import { getRecord } from '../lifecycle.js';
import { getArchive, type PathStat, putArchive, statPath } from './container.js';
import type { ExtractOptions, ExtractResult } from './extract.js';
import { type ContainerFiles, type CopyOptions, copyFromContainer, copyToContainer } from './host.js';

export { copyFromContainer, copyToContainer } from './host.js';
export { goModeIsDir, goModeIsSymlink } from './paths.js';
export type { ContainerFiles, CopyOptions, ExtractOptions, ExtractResult, PathStat };

/**
 * A container's files from the host: Docker's archive endpoints (stat, get, put) and docker
 * cp's two directions on top of them. Everything in the container is resolved inside its root.
 */
export class EngineArchive {
  constructor(private readonly ctx: EngineContext) {}

  /** One container's archive endpoints in this process, for docker cp's host half. */
  #files(ref: string): ContainerFiles {
    const ctx = this.ctx;
    return {
      name: () => getRecord(ctx, ref).name,
      stat: (path) => statPath(ctx, ref, path),
      get: (path, out) => getArchive(ctx, ref, path, out),
      put: (path, input, options) => putArchive(ctx, ref, path, input, options),
    };
  }

  /** HEAD /containers/{id}/archive: `path`'s stat, its last component not followed. */
  stat(ref: string, path: string): Promise<PathStat> {
    return statPath(this.ctx, ref, path);
  }

  /** GET /containers/{id}/archive: a tar of `path` written to `out` (`onStat` before any byte). */
  get(ref: string, path: string, out: Writable, onStat?: (s: PathStat) => void): Promise<PathStat> {
    return getArchive(this.ctx, ref, path, out, onStat);
  }

  /** PUT /containers/{id}/archive: tar `input` extracted into folder `path`. */
  put(ref: string, path: string, input: Readable, options: ExtractOptions = {}): Promise<ExtractResult> {
    return putArchive(this.ctx, ref, path, input, options);
  }

  /** docker cp CONTAINER:SRC DST. */
  copyFrom(ref: string, src: string, dst: string, options: CopyOptions = {}): Promise<ExtractResult> {
    return copyFromContainer(this.#files(ref), src, dst, options);
  }

  /** docker cp SRC CONTAINER:DST (`src` `-`: a tar read from `options.stdin`). */
  copyTo(
    ref: string,
    src: string,
    dst: string,
    options: CopyOptions & { stdin?: Readable } = {},
  ): Promise<ExtractResult> {
    return copyToContainer(this.#files(ref), src, dst, options);
  }
}
