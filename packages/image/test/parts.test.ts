// The package's shared parts: the concurrency limiter, the manifest parser (with the store's
// and the registry's rules), the hashing stream.
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import {
  isImageError,
  isRegistryError,
  parseImageIndex,
  parseImageManifest,
  parseManifest,
  sha256,
} from '../src/index.js';
import { HashingStream } from '../src/store/hashing.js';
import { runLimited, TaskGroup } from '../src/task-group.js';

const D = (c: string) => `sha256:${c.repeat(64)}`;
const layer = { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: D('a'), size: 3 };
const config = { mediaType: 'application/vnd.oci.image.config.v1+json', digest: D('b'), size: 2 };
const bytes = (o: unknown) => Buffer.from(JSON.stringify(o));

describe('TaskGroup', () => {
  it('runs at most `limit` tasks at once, in order', async () => {
    let running = 0;
    let most = 0;
    const order: number[] = [];
    await runLimited([1, 2, 3, 4, 5, 6], 2, undefined, async (n) => {
      order.push(n);
      most = Math.max(most, ++running);
      await sleep(5);
      running--;
    });
    expect(most).toBe(2);
    expect(order).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('aborts the others on the first failure, skips what has not started and throws that failure', async () => {
    const started: number[] = [];
    let aborted = false;
    const run = runLimited([1, 2, 3, 4], 2, undefined, async (n, signal) => {
      started.push(n);
      if (n === 1) {
        await sleep(5);
        throw new Error('one failed');
      }
      await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve()));
      aborted = true;
    });
    await expect(run).rejects.toThrow('one failed');
    expect(started).toEqual([1, 2]);
    expect(aborted).toBe(true);
  });

  it('lets a task give up its slot early, and ends on an outer abort', async () => {
    const group = new TaskGroup(1);
    const events: string[] = [];
    let finish = () => {};
    group.add(async (_s, release) => {
      events.push('a starts');
      release();
      await new Promise<void>((r) => {
        finish = r;
      });
      events.push('a ends');
    });
    group.add(async () => {
      events.push('b starts');
      finish();
    });
    await group.done();
    expect(events).toEqual(['a starts', 'b starts', 'a ends']);

    const outer = new AbortController();
    outer.abort(new Error('stopped'));
    await expect(runLimited([1], 3, outer.signal, async () => {})).rejects.toThrow('stopped');
  });
});

describe('the manifest parser', () => {
  const good = { schemaVersion: 2, config, layers: [layer] };

  it('reads a good manifest the same for the store and the registry', () => {
    expect(parseManifest(bytes(good), D('c'))).toEqual(good);
    expect(parseImageManifest(bytes(good))).toEqual(good);
  });

  it('refuses bad manifests with each caller’s error type', () => {
    const bad: [unknown, string, string][] = [
      ['{', 'BAD_MANIFEST', 'INVALID_MANIFEST'],
      [{ ...good, schemaVersion: 1 }, 'BAD_MANIFEST', 'UNSUPPORTED_MANIFEST'],
      [{ schemaVersion: 2, manifests: [] }, 'BAD_MANIFEST', 'INVALID_MANIFEST'],
      [{ ...good, layers: undefined }, 'BAD_MANIFEST', 'INVALID_MANIFEST'],
      [{ ...good, layers: [{ ...layer, size: -1 }] }, 'BAD_MANIFEST', 'INVALID_MANIFEST'],
      [{ ...good, config: { ...config, digest: 'sha256:XYZ' } }, 'BAD_MANIFEST', 'INVALID_MANIFEST'],
    ];
    for (const [doc, store, registry] of bad) {
      const b = typeof doc === 'string' ? Buffer.from(doc) : bytes(doc);
      expect(() => parseManifest(b, D('c')), JSON.stringify(doc)).toThrow(
        expect.objectContaining({ name: 'ImageError', code: store }),
      );
      expect(() => parseImageManifest(b), JSON.stringify(doc)).toThrow(
        expect.objectContaining({ name: 'RegistryError', code: registry }),
      );
    }
  });

  it('applies the store’s own rules: sha256 digests, layer types it unpacks, the size cap', () => {
    const sha512 = { ...good, layers: [{ ...layer, digest: `sha512:${'a'.repeat(128)}` }] };
    expect(parseImageManifest(bytes(sha512)).layers[0]!.digest).toMatch(/^sha512:/);
    expect(() => parseManifest(bytes(sha512), D('c'))).toThrow(/malformed digest/);
    const foreign = { ...good, layers: [{ ...layer, mediaType: 'application/x-foreign' }] };
    expect(parseImageManifest(bytes(foreign)).layers).toHaveLength(1);
    let e: unknown;
    try {
      parseManifest(bytes(foreign), D('c'));
    } catch (err) {
      e = err;
    }
    expect(isImageError(e, 'UNSUPPORTED')).toBe(true);
    expect(() => parseManifest(Buffer.alloc(5 * 1024 * 1024, 32), D('c'))).toThrow(/allowed for it/);
  });

  it('reads indexes', () => {
    const index = {
      schemaVersion: 2,
      manifests: [{ ...config, mediaType: 'application/vnd.oci.image.manifest.v1+json' }],
    };
    expect(parseImageIndex(bytes(index))).toEqual(index);
    let e: unknown;
    try {
      parseImageIndex(bytes({ schemaVersion: 2 }));
    } catch (err) {
      e = err;
    }
    expect(isRegistryError(e, 'INVALID_MANIFEST')).toBe(true);
  });
});

describe('HashingStream', () => {
  it('passes bytes on, counts and hashes them', async () => {
    const data = Buffer.from('hello, world');
    const h = new HashingStream();
    const seen: number[] = [];
    const counting = new HashingStream('sha256', { hashing: false, onBytes: (n) => seen.push(n) });
    const out: Buffer[] = [];
    await pipeline(Readable.from([data.subarray(0, 5), data.subarray(5)]), h, counting, async (s) => {
      for await (const c of s) out.push(c as Buffer);
    });
    expect(Buffer.concat(out)).toEqual(data);
    expect(h.size).toBe(data.length);
    expect(h.digest()).toBe(sha256(data));
    expect(seen).toEqual([5, data.length]);
    expect(() => counting.digest()).toThrow(/hashing: false/);
  });
});
