import { createHash, type Hash } from 'node:crypto';
import { Worker } from 'node:worker_threads';

/** A running sha256 whose bytes may be hashed on another thread. */
export interface Sha256 {
  update(chunk: Uint8Array): void;
  /** Resolves when the hashing thread has caught up enough to take more (backpressure). */
  ready(): Promise<void> | undefined;
  /** `sha256:<hex>` of everything given. */
  digest(): Promise<string>;
  /** Drops the state (the write failed). */
  discard(): void;
}

/** Bytes copied per message to the hashing thread. */
const PIECE = 1024 * 1024;
/** Pieces a hash may have queued before its writer waits. */
const MAX_QUEUED = 32;
/** Below this size a blob is hashed inline: a thread hop costs more than it saves. */
export const OFFLOAD_MIN = 4 * 1024 * 1024;

const WORKER_CODE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const hashes = new Map();
parentPort.on('message', (m) => {
  if (m.drop) { hashes.delete(m.id); return; }
  let h = hashes.get(m.id);
  if (!h) { h = createHash('sha256'); hashes.set(m.id, h); }
  if (m.buf) {
    h.update(new Uint8Array(m.buf, 0, m.len));
    parentPort.postMessage({ id: m.id, ret: m.buf }, [m.buf]);
  }
  if (m.end) { hashes.delete(m.id); parentPort.postMessage({ id: m.id, digest: h.digest('hex') }); }
});
`;

interface Waiting {
  queued: number;
  onDrain?: () => void;
  onDigest?: (hex: string) => void;
  onError?: (e: Error) => void;
}

/**
 * One thread per process hashes big blobs, so that the event loop (which also parses HTTP
 * and drives the disk writes) does not: the bytes are copied into recycled 1 MiB pieces
 * and moved, not copied, to the thread and back. The thread keeps the process alive only
 * while a hash is under way.
 */
class HashThread {
  private worker: Worker | undefined;
  private broken = false;
  private nextId = 1;
  private readonly active = new Map<number, Waiting>();
  private readonly free: ArrayBuffer[] = [];

  private start(): Worker | undefined {
    if (this.worker || this.broken) return this.worker;
    try {
      const w = new Worker(WORKER_CODE, { eval: true });
      w.unref();
      w.on('message', (m: { id: number; ret?: ArrayBuffer; digest?: string }) => {
        const s = this.active.get(m.id);
        if (m.ret) {
          if (this.free.length < MAX_QUEUED) this.free.push(m.ret);
          if (s) {
            s.queued--;
            if (s.queued <= MAX_QUEUED / 2 && s.onDrain) {
              const f = s.onDrain;
              s.onDrain = undefined;
              f();
            }
          }
        }
        if (m.digest !== undefined && s) {
          this.finish(m.id);
          s.onDigest?.(m.digest);
        }
      });
      const fail = (e: Error) => {
        this.broken = true;
        this.worker = undefined;
        for (const [id, s] of this.active) {
          this.finish(id);
          s.onError?.(e);
          s.onDrain?.();
        }
      };
      w.on('error', fail);
      w.on('exit', (code) => fail(new Error(`the hashing thread ended (exit code ${code})`)));
      this.worker = w;
    } catch {
      this.broken = true;
    }
    return this.worker;
  }

  private finish(id: number): void {
    this.active.delete(id);
    if (this.active.size === 0) this.worker?.unref();
  }

  /** A sha256 on the thread, or undefined when there is no thread to be had. */
  open(): Sha256 | undefined {
    const w = this.start();
    if (!w) return undefined;
    const id = this.nextId++;
    const state: Waiting = { queued: 0 };
    if (this.active.size === 0) w.ref();
    this.active.set(id, state);
    let piece: Buffer | undefined;
    let fill = 0;
    let failure: Error | undefined;
    state.onError = (e) => {
      failure = e;
    };
    const send = (end: boolean) => {
      if (failure) return;
      if (piece && fill > 0) {
        const buf = piece.buffer as ArrayBuffer;
        state.queued++;
        w.postMessage({ id, buf, len: fill, end }, [buf]);
      } else if (end) w.postMessage({ id, end });
      piece = undefined;
      fill = 0;
    };
    return {
      update: (chunk) => {
        let off = 0;
        while (off < chunk.byteLength) {
          if (!piece) piece = Buffer.from(this.free.pop() ?? new ArrayBuffer(PIECE));
          const n = Math.min(PIECE - fill, chunk.byteLength - off);
          piece.set(chunk.subarray(off, off + n), fill);
          fill += n;
          off += n;
          if (fill === PIECE) send(false);
        }
      },
      ready: () => {
        if (failure || state.queued <= MAX_QUEUED) return undefined;
        return new Promise<void>((resolve) => {
          state.onDrain = resolve;
        });
      },
      digest: () =>
        new Promise<string>((resolve, reject) => {
          if (failure) return reject(failure);
          state.onDigest = (hex) => resolve(`sha256:${hex}`);
          state.onError = (e) => reject(e);
          send(true);
        }),
      discard: () => {
        if (!this.active.has(id)) return;
        this.finish(id);
        if (!failure) w.postMessage({ id, drop: true });
      },
    };
  }
}

const thread = new HashThread();

/** An inline sha256 with the same interface. */
function inline(): Sha256 {
  const h: Hash = createHash('sha256');
  return {
    update: (chunk) => {
      h.update(chunk);
    },
    ready: () => undefined,
    digest: async () => `sha256:${h.digest('hex')}`,
    discard: () => {},
  };
}

/**
 * A sha256 for a blob of `expectedSize` bytes (when known): on the hashing thread when the
 * blob is big enough to be worth it, inline otherwise (or when no thread can be started).
 */
export function sha256Stream(expectedSize: number | undefined): Sha256 {
  if (expectedSize !== undefined && expectedSize >= OFFLOAD_MIN) return thread.open() ?? inline();
  return inline();
}
