import * as fs from 'node:fs';
import { join } from 'node:path';
import { ImageError } from '../errors.js';
import { ownerAlive, SELF_OWNER } from './owner.js';
import { privateDir } from './state-dir.js';

/** A container that uses an image: a running one keeps it even from a forced removal. */
export interface ImageUser {
  /** The container's id (or a hold's holder). */
  id: string;
  /** Running (paused and restarting count): the image cannot be removed, even with force. */
  running: boolean;
}

const HOLDER_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

/**
 * Holds on images (containerd's leases): a container being made holds its image from the
 * moment the image is resolved until the container's record (which names the image) is
 * written. A removal checks the holds under the same lock that makes them, so it either sees
 * the hold (and keeps the layers) or comes first (and the create finds no image).
 *
 *     holds/<holder>   {"manifestDigest": ..., "owner": "<pid>.<start>"}
 *
 * A hold whose owner process is gone (a create killed with SIGKILL) counts for nothing and is
 * removed when seen.
 */
export class Holds {
  constructor(readonly dir: string) {
    privateDir(dir);
  }

  private path(holder: string): string {
    if (!HOLDER_RE.test(holder))
      throw new ImageError('INVALID_REFERENCE', `invalid image holder "${holder}"`);
    return join(this.dir, holder);
  }

  /** Writes a hold (the caller holds the store's gc lock). */
  add(holder: string, manifestDigest: string): void {
    const path = this.path(holder);
    fs.writeFileSync(`${path}.tmp`, JSON.stringify({ manifestDigest, owner: SELF_OWNER }), { mode: 0o600 });
    fs.renameSync(`${path}.tmp`, path);
  }

  drop(holder: string): void {
    fs.rmSync(this.path(holder), { force: true });
  }

  /**
   * Live holds as holder -> manifest digest (the caller holds the gc lock, so a `.tmp` is a
   * killed writer's); stale ones (owner gone, unreadable) are removed.
   */
  live(): Map<string, string> {
    const out = new Map<string, string>();
    for (const name of fs.readdirSync(this.dir)) {
      const path = join(this.dir, name);
      let hold: { manifestDigest?: unknown; owner?: unknown } | undefined;
      try {
        hold = name.endsWith('.tmp') ? undefined : (JSON.parse(fs.readFileSync(path, 'utf8')) as typeof hold);
      } catch {
        hold = undefined;
      }
      const owner = typeof hold?.owner === 'string' ? hold.owner : '';
      if (typeof hold?.manifestDigest === 'string' && ownerAlive(owner)) out.set(name, hold.manifestDigest);
      else fs.rmSync(path, { force: true });
    }
    return out;
  }
}
