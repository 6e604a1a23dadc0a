// A map from inode numbers to numbers, shared by every thread of the server: open addressing
// over a growable SharedArrayBuffer of (key, value) float pairs. Used under the node table's
// lock only. Keys are inode numbers (never 0); values are inode numbers or node slots.

const EMPTY = 0;
const TOMBSTONE = -1;
const INITIAL = 1024;
const MAX = 1 << 24;
const TWO32 = 2 ** 32;

/** ctl words: capacity (pairs), live entries, used slots (live and tombstones). */
const C_CAP = 0;
const C_LIVE = 1;
const C_USED = 2;

export interface InoMapBuffers {
  ctl: SharedArrayBuffer;
  table: SharedArrayBuffer;
}

type GrowableSab = SharedArrayBuffer & { grow(n: number): void };

export function createInoMap(): InoMapBuffers {
  const Growable = SharedArrayBuffer as unknown as new (
    n: number,
    o: { maxByteLength: number },
  ) => SharedArrayBuffer;
  const ctl = new SharedArrayBuffer(16);
  new Int32Array(ctl)[C_CAP] = INITIAL;
  return { ctl, table: new Growable(INITIAL * 16, { maxByteLength: MAX * 16 }) };
}

function hash(k: number): number {
  const lo = (k % TWO32) | 0;
  const hi = Math.floor(k / TWO32) | 0;
  let h = Math.imul(lo ^ Math.imul(hi, 0x9e3779b1), 0x85ebca6b);
  h ^= h >>> 15;
  return h >>> 0;
}

export class InoMap {
  private readonly c: Int32Array;
  /** Length-tracking: follows the buffer as any thread grows it. */
  private readonly t: Float64Array;

  constructor(private readonly b: InoMapBuffers) {
    this.c = new Int32Array(b.ctl);
    this.t = new Float64Array(b.table);
  }

  get size(): number {
    return this.c[C_LIVE];
  }

  /** The value of `k`, or 0. */
  get(k: number): number {
    const p = this.find(k);
    return p < 0 ? 0 : this.t[p + 1];
  }

  set(k: number, v: number): void {
    const p = this.find(k);
    if (p >= 0) {
      this.t[p + 1] = v;
      return;
    }
    if ((this.c[C_USED] + 1) * 10 > this.c[C_CAP] * 7) this.rehash();
    const mask = this.c[C_CAP] - 1;
    for (let s = hash(k) & mask; ; s = (s + 1) & mask) {
      const key = this.t[s * 2];
      if (key === EMPTY || key === TOMBSTONE) {
        if (key === EMPTY) this.c[C_USED]++;
        this.t[s * 2] = k;
        this.t[s * 2 + 1] = v;
        this.c[C_LIVE]++;
        return;
      }
    }
  }

  delete(k: number): void {
    const p = this.find(k);
    if (p < 0) return;
    this.t[p] = TOMBSTONE;
    this.t[p + 1] = 0;
    this.c[C_LIVE]--;
  }

  /** The index of `k`'s key in the table, or -1. */
  private find(k: number): number {
    const mask = this.c[C_CAP] - 1;
    for (let s = hash(k) & mask, n = 0; n <= mask; s = (s + 1) & mask, n++) {
      const key = this.t[s * 2];
      if (key === EMPTY) return -1;
      if (key === k) return s * 2;
    }
    return -1;
  }

  /** Drops tombstones, and doubles the table when it is more than a third full. */
  private rehash(): void {
    const cap = this.c[C_CAP];
    const live: number[] = [];
    for (let s = 0; s < cap; s++) {
      const key = this.t[s * 2];
      if (key !== EMPTY && key !== TOMBSTONE) live.push(key, this.t[s * 2 + 1]);
    }
    let size = cap;
    if (live.length / 2 > cap / 3 && cap * 2 <= MAX) {
      size = cap * 2;
      (this.b.table as GrowableSab).grow(size * 16);
    } else if (live.length / 2 + 1 >= cap * 0.7) throw new Error('corral fuse: the inode map is full');
    this.t.fill(0, 0, size * 2);
    this.c[C_CAP] = size;
    this.c[C_LIVE] = 0;
    this.c[C_USED] = 0;
    for (let j = 0; j < live.length; j += 2) this.set(live[j], live[j + 1]);
  }
}
