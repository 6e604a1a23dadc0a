import * as fs from 'node:fs';
import type { ContentStore } from './content.js';
import { pidAlive, tempName } from './fsutil.js';
import type { LayerStore } from './layer-store.js';
import { type Collected, collectUnused } from './maintenance.js';
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
    const mark = tempName(this.activeDir, 'session');
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
    return fs.readdirSync(this.activeDir).filter((n) => pidAlive(Number.parseInt(n, 10))).length;
  }

  /** Deletes layers and blobs that no image record references; skipped while a writer runs. */
  async collect(): Promise<Collected> {
    const release = await this.lock('gc');
    try {
      if (this.activeSessions() > 0) return { deletedLayers: [], deletedBlobs: [], reclaimedBytes: 0 };
      return collectUnused(this.records(), this.layers, this.content);
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
