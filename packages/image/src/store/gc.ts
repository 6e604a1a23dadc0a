import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import type { ContentStore } from './content.js';
import type { LayerStore } from './layer-store.js';
import { type Collected, collectUnused } from './maintenance.js';
import { ownerAlive, SELF_OWNER } from './owner.js';
import type { ImageRecord } from './types.js';

/**
 * Garbage collection and the write sessions that hold it off (containerd's leases): a writer
 * marks itself in locks/active/ while it stores blobs not yet named by an image record, and
 * collection skips while any live writer is marked. Both take the store's `gc` lock.
 */
export class Collector {
  constructor(
    private readonly activeDir: string,
    private readonly lock: (name: string) => Promise<() => void>,
    private readonly records: () => ImageRecord[],
    private readonly layers: LayerStore,
    private readonly content: ContentStore,
  ) {}

  /**
   * Runs `fn` as a write session: while it runs, prune and remove leave unreferenced blobs
   * and layers alone.
   */
  async session<T>(fn: () => Promise<T>): Promise<T> {
    const release = await this.lock('gc');
    const mark = join(this.activeDir, `${SELF_OWNER}-session-${randomBytes(6).toString('hex')}`);
    try {
      fs.writeFileSync(mark, '', { mode: 0o600 });
    } finally {
      release();
    }
    try {
      return await fn();
    } finally {
      fs.rmSync(mark, { force: true });
    }
  }

  private activeSessions(): number {
    // A mark whose owner is gone (a killed pull), or whose PID was reused since, holds nothing.
    return fs.readdirSync(this.activeDir).filter((n) => ownerAlive(n)).length;
  }

  /** Runs `fn` under the gc lock: removals and holds decide and act as one step. */
  async locked<T>(fn: () => Promise<T> | T): Promise<T> {
    const release = await this.lock('gc');
    try {
      return await fn();
    } finally {
      release();
    }
  }

  /**
   * Deletes layers and blobs that no image record references; skipped while a writer runs.
   * The caller holds the gc lock (see `locked`).
   */
  collectLocked(): Collected {
    if (this.activeSessions() > 0) return { deletedLayers: [], deletedBlobs: [], reclaimedBytes: 0 };
    return collectUnused(this.records(), this.layers, this.content);
  }

  /** Deletes layers and blobs that no image record references; skipped while a writer runs. */
  collect(): Promise<Collected> {
    return this.locked(() => this.collectLocked());
  }

  /**
   * Deletes layers a failed import unpacked (by diff ID), when no image needs them and no
   * other writer runs: a failed load or pull leaves the store as it was.
   */
  async discardLayers(diffIds: Iterable<string>): Promise<void> {
    const release = await this.lock('gc');
    try {
      if (this.activeSessions() > 1) return;
      const used = new Set(this.records().flatMap((r) => r.layers.map((l) => l.diffId)));
      for (const d of diffIds) {
        if (used.has(d)) continue;
        const meta = this.layers.meta(d);
        if (!meta) continue;
        fs.rmSync(this.layers.metaPathOf(d), { force: true });
        fs.rmSync(join(this.layers.root, meta.dir), { recursive: true, force: true });
      }
    } finally {
      release();
    }
  }

  /** Deletes blobs a failed operation wrote, when no image needs them and no other writer runs. */
  async discardBlobs(digests: Iterable<string>): Promise<void> {
    const release = await this.lock('gc');
    try {
      if (this.activeSessions() > 1) return;
      const used = new Set<string>();
      for (const r of this.records()) {
        used.add(r.manifestDigest);
        used.add(r.configDigest);
        for (const l of r.layers) used.add(l.digest);
      }
      for (const d of digests) if (!used.has(d)) this.content.deleteBlob(d);
    } finally {
      release();
    }
  }
}
