import * as fs from 'node:fs';
import { ImageError } from '../errors.js';
import { shortId } from './digest.js';
import { writeFileAtomic } from './fsutil.js';
import type { Collector } from './gc.js';
import type { Holds, ImageUser } from './holds.js';
import type { ImageStore } from './image-store.js';
import { familiarName, normalizeReference } from './reference.js';
import type { RefStore } from './refs.js';
import type { ImageRecord, PruneOptions, PruneResult, RemoveOptions, RemoveResult } from './types.js';

interface RemovalDeps {
  store: ImageStore;
  refs: RefStore;
  gc: Collector;
  holds: Holds;
  users: (imageId: string) => ImageUser[];
  imagePath: (manifestDigest: string) => string;
}

/**
 * Docker's rules for images in use, for rmi and image prune:
 * - a name that is one of several only loses that name (as Docker does, even in use);
 * - an image a running (or paused) container uses is never removed, even with force
 *   ("cannot be forced");
 * - one only stopped containers use needs force: it loses its names and its record is marked
 *   `removed` (hidden from names, lists and lookups) and kept with its layers and blobs, which
 *   containers start, commit, diff and export from, until the last of them is removed;
 * - otherwise the image is deleted, then unreferenced layers and blobs are collected.
 * Every decision is taken under the gc lock, the one `hold` takes, so a create racing a
 * removal either holds the image first (it is kept) or finds it gone (NOT_FOUND).
 */
export class Removal {
  constructor(private readonly d: RemovalDeps) {}

  hold(ref: string, holder: string): Promise<ImageRecord> {
    return this.d.gc.locked(() => {
      const record = this.d.store.get(ref);
      for (const l of record.layers) this.d.store.layerDir(l.diffId); // NOT_FOUND if not whole
      this.d.holds.add(holder, record.manifestDigest);
      return record;
    });
  }

  unhold(holder: string): void {
    this.d.holds.drop(holder);
  }

  async release(imageId: string): Promise<void> {
    if (!this.d.store.records().some((r) => r.id === imageId && r.removed)) return;
    await this.d.gc.locked(() => this.sweepLocked());
  }

  /** The containers that use an image, the creates holding it among them (as stopped ones). */
  private usersOf(
    record: ImageRecord,
    options: RemoveOptions | PruneOptions,
    holds: Map<string, string>,
  ): ImageUser[] {
    const users = [...(options.users ?? this.d.users)(record.id)];
    if (options.isInUse?.(record.id)) users.push({ id: '', running: false });
    for (const [holder, digest] of holds)
      if (digest === record.manifestDigest && !users.some((u) => u.id === holder))
        users.push({ id: holder, running: false });
    return users;
  }

  /** Deletes a record, or, while containers still use the image, marks it removed. */
  private dropRecord(record: ImageRecord, users: ImageUser[]): void {
    const path = this.d.imagePath(record.manifestDigest);
    if (users.length === 0) fs.rmSync(path, { force: true });
    else if (!record.removed)
      writeFileAtomic(
        path,
        JSON.stringify({ ...record, removed: new Date().toISOString() }, null, 2),
        this.d.store.tmpDir,
      );
  }

  /** Deletes removed records no container uses any more, then unreferenced layers and blobs. */
  private sweepLocked(options: PruneOptions = {}, holds = this.d.holds.live()) {
    for (const r of this.d.store.records())
      if (r.removed && this.usersOf(r, options, holds).length === 0) this.dropRecord(r, []);
    return this.d.gc.collectLocked();
  }

  remove(ref: string, options: RemoveOptions = {}): Promise<RemoveResult> {
    return this.d.gc.locked(async () => {
      const record = this.d.store.get(ref);
      const names = this.d.store.namesOf(record.manifestDigest);
      const full = safeNormalize(ref);
      const byName = full !== undefined && names.includes(full);
      const id = shortId(record.id);
      const holds = this.d.holds.live();
      const users = this.usersOf(record, options, holds);
      const running = users.find((u) => u.running);
      const stopped = users.find((u) => !u.running);
      if (byName && names.length > 1) {
        await this.d.store.untag(ref);
        return { untagged: [familiarName(full)], deleted: [] };
      }
      if (running) {
        throw new ImageError(
          'IN_USE',
          `conflict: unable to delete ${id} (cannot be forced) - image is being used by running container ${shortId(running.id)}`,
        );
      }
      if (!byName && names.length > 1 && !options.force) {
        throw new ImageError(
          'CONFLICT',
          `conflict: unable to delete ${id} (must be forced) - image is referenced in multiple repositories (${names.map(familiarName).join(', ')})`,
        );
      }
      if (stopped && !options.force) {
        const who = stopped.id ? ` ${shortId(stopped.id)}` : '';
        throw new ImageError(
          'IN_USE',
          byName
            ? `conflict: unable to remove repository reference "${ref}" (must force) - container${who} is using its referenced image ${id}`
            : `conflict: unable to delete ${id} (must be forced) - image is being used by stopped container${who}`,
        );
      }
      await this.d.refs.update((refs) => {
        for (const n of names) delete refs[n];
      });
      this.dropRecord(record, users);
      this.sweepLocked(options, holds);
      return { untagged: names.map(familiarName), deleted: [record.id] };
    });
  }

  prune(options: PruneOptions = {}): Promise<PruneResult> {
    return this.d.gc.locked(async () => {
      const refs = new Set(Object.values(this.d.refs.read()));
      const holds = this.d.holds.live();
      const deletedImages: string[] = [];
      for (const r of this.d.store.records()) {
        if (r.removed) continue; // swept below once no container uses it
        const dangling = !refs.has(r.manifestDigest);
        if (!dangling && !options.all) continue;
        if (options.until !== undefined && !(Date.parse(r.created ?? r.loadedAt) < options.until)) continue;
        if (this.usersOf(r, options, holds).length > 0) continue;
        if (!dangling) {
          const names = this.d.store.namesOf(r.manifestDigest);
          await this.d.refs.update((all) => {
            for (const n of names) delete all[n];
          });
        }
        this.dropRecord(r, []);
        deletedImages.push(r.id);
      }
      const collected = this.sweepLocked(options, holds);
      return { deletedImages, ...collected };
    });
  }
}

function safeNormalize(ref: string): string | undefined {
  try {
    return normalizeReference(ref);
  } catch {
    return undefined;
  }
}
