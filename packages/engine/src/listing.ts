// The listings (`corral ps`, `corral images`) without the Engine (issue 15): an Engine brings
// the code of every command (runtime, unions, networks, archives), which a command that only
// reads records would load and evaluate at each start. A listing reads the container records
// and the image store's files; when the data root holds anything Engine.open's reclaim would
// release (reclaimWanted), or a record a listing would have to bring up to date, it opens the
// whole Engine instead, which reclaims as every command does, and lists through it.
import { readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { type ImageSummary, isPrivateOrMissing, listImages, privateDir, storeLeftovers } from '@corral/image';
import { type ContainerSummary, type ListOptions, listContainers } from './container-list.js';
import { defaultRoot, type EngineOptions } from './context.js';
import type { Engine } from './engine.js';
import { engineSync } from './errors.js';
import { reclaimWanted } from './reclaim.js';
import { type ContainerRecord, RecordStore } from './records.js';

/** What the listings ask of an engine: the Engine has these too. */
export interface Listing {
  list(options?: ListOptions): ContainerSummary[];
  /** `ps -s`: opens the Engine (its storage code) on first use. */
  size(ref: string): Promise<{ rw: number; rootFs: number }>;
  images: { list(): ImageSummary[] };
}

/**
 * A listing of the data root `options` name. `reclaim` as for Engine.open: with 'always' (the
 * default) the Engine is opened when a reclaim is wanted; with 'never' the listing always reads
 * alone. Options only an Engine can honour (network switches to keep, a resident front-end)
 * open the Engine.
 */
export async function openListing(options: EngineOptions = {}): Promise<Listing> {
  const open = async (o: EngineOptions) => {
    const { Engine } = await import('./engine.js');
    return Engine.open(o);
  };
  if (options.resident || Object.values(options.network ?? {}).some((v) => v !== undefined))
    return wrap(await open(options));
  const root = resolve(options.root ?? defaultRoot());
  // As the Engine makes them (a listing of a new root makes it): 0700, and the records' folders.
  privateDir(root);
  const records = new ReadOnceRecords(root);
  // A folder the Engine would make private (an older version's 0755) or refuse (another
  // user's), or what a killed pull or load left in the image store: the Engine sees to them
  // when it opens, as for any command.
  if (
    !privateState(root) ||
    storeLeftovers(join(root, 'image')) ||
    (options.reclaim !== 'never' && reclaimWanted(root, records))
  )
    return wrap(await open(options));
  let engine: Promise<Engine> | undefined;
  return {
    list: (o) => {
      try {
        return listContainers({ root, records }, { get: (ref) => records.resolve(ref), fresh: (r) => r }, o);
      } finally {
        records.forget(); // a second listing reads the records as they are then
      }
    },
    size: async (ref) => {
      // Nothing to reclaim was found a moment ago: the Engine need not look again.
      engine ??= open({ ...options, reclaim: 'never' });
      return (await engine).size(ref);
    },
    images: { list: () => engineSync(() => listImages(join(root, 'image'))) },
  };
}

/**
 * Whether the root's state folders that the Engine makes private when it opens (privateDir:
 * 0700 and this user's) all are, or are missing: the runtime's, the image store's and those in
 * it, and in its blobs/ and locks/ (the records' are made so by RecordStore).
 */
function privateState(root: string): boolean {
  const image = join(root, 'image');
  const dirs = [join(root, 'runtime'), image];
  for (const parent of [image, join(image, 'blobs'), join(image, 'locks')]) {
    try {
      for (const e of readdirSync(parent, { withFileTypes: true }))
        if (e.isDirectory()) dirs.push(join(parent, e.name));
    } catch {
      // missing: nothing in it to check
    }
  }
  return dirs.every(isPrivateOrMissing);
}

/**
 * The records as the check before a listing read them, read again by the listing only after it:
 * the check and the listing (and its filters) read each container's record and the folder of
 * records once, not two or three times (their parse is a good part of a `ps`). What they see
 * differs from a second read by the milliseconds between them, as any listing's does.
 */
class ReadOnceRecords extends RecordStore {
  private records = new Map<string, ContainerRecord | null>();
  private idList: string[] | undefined;

  override read(id: string): ContainerRecord | null {
    let r = this.records.get(id);
    if (r === undefined) {
      r = super.read(id); // a damaged record throws each time, as it does unread
      this.records.set(id, r);
    }
    return r;
  }

  override ids(): string[] {
    this.idList ??= super.ids();
    return this.idList;
  }

  forget(): void {
    this.records.clear();
    this.idList = undefined;
  }
}

/** The Engine as a Listing (its size is synchronous). */
function wrap(e: Engine): Listing {
  return { list: (o) => e.list(o), size: async (ref) => e.size(ref), images: e.images };
}
