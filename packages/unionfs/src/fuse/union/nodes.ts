// The union's inode table, shared by every thread of the server: SharedArrayBuffers that
// grow, holding for each node the kernel knows its parent and name (so its path in any layer
// can be rebuilt), its lookup count, which layers it comes from, its inode number and its
// open-file bookkeeping; a hash from (parent, name) to node; and one lock. Every change of
// the union's tree happens under the lock (the big lock of fuse-overlayfs), reads of file
// data do not take it.
// Hard links in upper are one node for the kernel: other names it learns are alias slots
// (parent and name, in the name hash, never sent to the kernel), found for a new name by the
// upper inode number (the links map). A node whose own name goes takes over an alias's.
import { createInoMap, InoMap, type InoMapBuffers } from './inomap.js';

/** Int32 fields of a node. */
export const N = {
  PARENT: 0,
  NAME: 1,
  NAMELEN: 2,
  HNEXT: 3,
  NLOOKUP: 4,
  GEN: 5,
  FLAGS: 6,
  /** The topmost layer holding the entry (0 is upper in a writable union). */
  TOP: 7,
  /** For folders: the lowest layer whose folder merges into this one. */
  BOTTOM: 8,
  INO_LO: 9,
  INO_HI: 10,
  /** Open files in passthrough mode, and the backing id they share. */
  PT_OPENS: 11,
  BACKING: 12,
  /** Open files in cached mode (READ and WRITE through the server). */
  CACHED_OPENS: 13,
  /** Free-list link of an unused slot. */
  NEXT_FREE: 14,
  /** An alias's node. */
  PRIMARY: 15,
  /** A node's first alias; an alias's next one. */
  ALIASES: 16,
  /** A hard-linked node's upper inode number (its key in the links map). */
  UINO_LO: 17,
  UINO_HI: 18,
  /** A folder's listing being read without a handle (ops-readdir.ts). */
  DIRSLOT: 19,
  /** A nameless file's (O_TMPFILE) own fd, until it is linked or forgotten. */
  TMPFD: 19,
} as const;
const STRIDE = 20;

export const NF = {
  USED: 1,
  DIR: 2,
  /** Removed from the tree (unlinked, or replaced by a rename); kept until the kernel forgets it. */
  DELETED: 4,
  /** The kernel forgot it while files were open: freed at the last release. */
  FORGOTTEN: 8,
  /** Made by this server and given no xattr since: it has no file capabilities. */
  CLEAN: 16,
  /** Another name of a hard-linked node (see above): not a node id of the kernel. */
  ALIAS: 32,
  /** A file made by O_TMPFILE and not linked yet: no name, reached by its fd (N.TMPFD). */
  TMPFILE: 64,
} as const;

/** Control words. */
const C_LOCK = 0;
const C_TOP = 1; // high-water mark of node slots
const C_FREE = 2; // free-slot list head
const C_COUNT = 3; // nodes in use
const C_HEAP_TOP = 4;
const C_BUCKETS = 5; // number of hash buckets (a power of two)
const C_NAME_FREE = 8; // 32 free-list heads of name chunks, by size / 8
const CONTROL_WORDS = 64;

const TWO32 = 2 ** 32;
/** Rounds a contended lock() spins before it sleeps. */
const SPIN = 200;
const MAX_NODES = 1 << 23;
const INITIAL_NODES = 4096;

/** The shared buffers, as sent to each thread. */
export interface NodeBuffers {
  control: SharedArrayBuffer;
  nodes: SharedArrayBuffer;
  names: SharedArrayBuffer;
  buckets: SharedArrayBuffer;
  /** Upper inode number -> the node of a hard-linked file. */
  links: InoMapBuffers;
}

export function createNodeBuffers(): NodeBuffers {
  const control = new SharedArrayBuffer(CONTROL_WORDS * 4);
  const c = new Int32Array(control);
  c[C_TOP] = 2; // slot 0 is no node; slot 1 is the root (FUSE_ROOT_ID)
  c[C_BUCKETS] = 4096;
  c[C_HEAP_TOP] = 8;
  // Growable SharedArrayBuffers (ES2024; Node 20 has them, TypeScript's ES2023 lib does not).
  const Growable = SharedArrayBuffer as unknown as new (
    n: number,
    o: { maxByteLength: number },
  ) => SharedArrayBuffer;
  const grow = (initial: number, max: number) => new Growable(initial, { maxByteLength: max });
  return {
    control,
    nodes: grow(INITIAL_NODES * STRIDE * 4, MAX_NODES * STRIDE * 4),
    names: grow(1 << 20, 1 << 30),
    buckets: grow(4096 * 4, MAX_NODES * 4),
    links: createInoMap(),
  };
}

/** FNV-1a over the parent and the name bytes. */
function hash(parent: number, name: Buffer): number {
  let h = (2166136261 ^ parent) >>> 0;
  h = Math.imul(h, 16777619);
  for (let i = 0; i < name.length; i++) {
    h ^= name[i];
    h = Math.imul(h, 16777619);
  }
  return h >>> 0;
}

type GrowableSab = SharedArrayBuffer & { grow(n: number): void; maxByteLength: number };

export class NodeTable {
  private readonly c: Int32Array;
  readonly n: Int32Array;
  /** A Buffer over the name heap, made again when another thread has grown the heap. */
  private nb: Buffer;
  private readonly buckets: Int32Array;
  readonly links: InoMap;

  /** Called when lock() has to wait for another thread (the session hands its reading on). */
  onContention: (() => void) | null = null;

  constructor(private readonly b: NodeBuffers) {
    this.c = new Int32Array(b.control);
    // Length-tracking views: they follow the buffers as any thread grows them.
    this.n = new Int32Array(b.nodes);
    this.nb = Buffer.from(b.names as unknown as ArrayBuffer);
    this.buckets = new Int32Array(b.buckets);
    this.links = new InoMap(b.links);
  }

  /** Takes the table's lock (a futex-style mutex: 0 free, 1 held, 2 held with waiters). */
  lock(): void {
    const c = this.c;
    let s = Atomics.compareExchange(c, C_LOCK, 0, 1);
    if (s === 0) return;
    this.onContention?.();
    // Held for a few microseconds as a rule: spin a while before sleeping in the kernel.
    for (let spin = 0; spin < SPIN; spin++) {
      if (Atomics.load(c, C_LOCK) === 0) {
        s = Atomics.compareExchange(c, C_LOCK, 0, 1);
        if (s === 0) return;
      }
    }
    if (s !== 2) s = Atomics.exchange(c, C_LOCK, 2);
    while (s !== 0) {
      Atomics.wait(c, C_LOCK, 2);
      s = Atomics.exchange(c, C_LOCK, 2);
    }
  }

  unlock(): void {
    if (Atomics.sub(this.c, C_LOCK, 1) !== 1) {
      Atomics.store(this.c, C_LOCK, 0);
      Atomics.notify(this.c, C_LOCK, 1);
    }
  }

  get(i: number, field: number): number {
    return this.n[i * STRIDE + field];
  }

  set(i: number, field: number, v: number): void {
    this.n[i * STRIDE + field] = v;
  }

  flags(i: number): number {
    return this.n[i * STRIDE + N.FLAGS];
  }

  isDir(i: number): boolean {
    return (this.n[i * STRIDE + N.FLAGS] & NF.DIR) !== 0;
  }

  private get nameBuf(): Buffer {
    if (this.nb.length !== this.b.names.byteLength)
      this.nb = Buffer.from(this.b.names as unknown as ArrayBuffer);
    return this.nb;
  }

  /** A node id the kernel gave us names a live slot. */
  valid(i: number): boolean {
    return i > 0 && i < this.c[C_TOP] && (this.n[i * STRIDE + N.FLAGS] & NF.USED) !== 0;
  }

  /** The node the kernel knows for name slot `i`: its own, or an alias's node. */
  kernelNode(i: number): number {
    return this.n[i * STRIDE + N.FLAGS] & NF.ALIAS ? this.n[i * STRIDE + N.PRIMARY] : i;
  }

  /** The upper inode number under which hard-linked node `i` is in the links map, or 0. */
  uino(i: number): number {
    return (this.n[i * STRIDE + N.UINO_LO] >>> 0) + (this.n[i * STRIDE + N.UINO_HI] >>> 0) * TWO32;
  }

  /** Puts node `i` in the links map under the upper inode number `uino`. */
  hashLinks(i: number, uino: number): void {
    this.n[i * STRIDE + N.UINO_LO] = (uino % TWO32) | 0;
    this.n[i * STRIDE + N.UINO_HI] = Math.floor(uino / TWO32) | 0;
    this.links.set(uino, i);
  }

  /** Takes node `i` out of the links map (its inode has no name left in upper). */
  unhashLinks(i: number): void {
    const k = this.uino(i);
    if (k && this.links.get(k) === i) this.links.delete(k);
    this.n[i * STRIDE + N.UINO_LO] = 0;
    this.n[i * STRIDE + N.UINO_HI] = 0;
  }

  /** A new alias slot: `name` in `parent` is another name of node `p`. */
  insertAlias(parent: number, name: Buffer, p: number): number {
    const i = this.insert(parent, name, NF.ALIAS, 0, 0, this.ino(p));
    const base = i * STRIDE;
    this.n[base + N.PRIMARY] = p;
    this.n[base + N.ALIASES] = this.n[p * STRIDE + N.ALIASES];
    this.n[p * STRIDE + N.ALIASES] = i;
    return i;
  }

  /** Takes alias `a` off its node's list. */
  private dropAlias(a: number): void {
    const p = this.n[a * STRIDE + N.PRIMARY];
    let prev = p;
    for (let j = this.n[p * STRIDE + N.ALIASES]; j; j = this.n[j * STRIDE + N.ALIASES]) {
      if (j === a) {
        this.n[prev * STRIDE + N.ALIASES] = this.n[a * STRIDE + N.ALIASES];
        return;
      }
      prev = j;
    }
  }

  ino(i: number): number {
    return (this.n[i * STRIDE + N.INO_LO] >>> 0) + (this.n[i * STRIDE + N.INO_HI] >>> 0) * TWO32;
  }

  setIno(i: number, ino: number): void {
    this.n[i * STRIDE + N.INO_LO] = (ino % TWO32) | 0;
    this.n[i * STRIDE + N.INO_HI] = Math.floor(ino / TWO32) | 0;
  }

  /** The name of node `i` as a view into the shared heap (copy it to keep it). */
  name(i: number): Buffer {
    const off = this.n[i * STRIDE + N.NAME];
    return this.nameBuf.subarray(off, off + this.n[i * STRIDE + N.NAMELEN]);
  }

  /** The child of `parent` called `name`, or 0. */
  find(parent: number, name: Buffer): number {
    const mask = this.c[C_BUCKETS] - 1;
    let i = this.buckets[hash(parent, name) & mask];
    while (i) {
      const base = i * STRIDE;
      if (this.n[base + N.PARENT] === parent && this.n[base + N.NAMELEN] === name.length) {
        const off = this.n[base + N.NAME];
        if (this.nameBuf.compare(name, 0, name.length, off, off + name.length) === 0) return i;
      }
      i = this.n[base + N.HNEXT];
    }
    return 0;
  }

  /** Sets up the root node (slot 1). */
  initRoot(top: number, bottom: number, ino: number): void {
    const base = STRIDE;
    this.n.fill(0, base, base + STRIDE);
    this.n[base + N.FLAGS] = NF.USED | NF.DIR;
    this.n[base + N.NLOOKUP] = 1;
    this.n[base + N.TOP] = top;
    this.n[base + N.BOTTOM] = bottom;
    this.n[base + N.NAME] = 0;
    this.n[base + N.NAMELEN] = 0;
    this.setIno(1, ino);
    this.c[C_COUNT] = 1;
  }

  /** A new node for `name` in `parent`, in the hash, with lookup count 0. */
  insert(parent: number, name: Buffer, flags: number, top: number, bottom: number, ino: number): number {
    let i = this.c[C_FREE];
    if (i) this.c[C_FREE] = this.n[i * STRIDE + N.NEXT_FREE];
    else {
      i = this.c[C_TOP]++;
      this.ensure(this.b.nodes as GrowableSab, (i + 1) * STRIDE * 4);
    }
    const base = i * STRIDE;
    const gen = this.n[base + N.GEN] + 1;
    this.n.fill(0, base, base + STRIDE);
    this.n[base + N.GEN] = gen;
    this.n[base + N.FLAGS] = NF.USED | flags;
    this.n[base + N.TOP] = top;
    this.n[base + N.BOTTOM] = bottom;
    this.setIno(i, ino);
    this.n[base + N.PARENT] = parent;
    this.n[base + N.NAME] = this.allocName(name);
    this.n[base + N.NAMELEN] = name.length;
    this.link(i);
    if (++this.c[C_COUNT] > this.c[C_BUCKETS]) this.rehash(this.c[C_BUCKETS] * 2);
    return i;
  }

  /** Takes `i` out of the tree (unlink, rmdir, replaced by a rename): it stays until forgotten. */
  detach(i: number): void {
    const base = i * STRIDE;
    if (this.n[base + N.FLAGS] & NF.DELETED) return;
    if (this.n[base + N.FLAGS] & NF.ALIAS) {
      // A name of a hard-linked node: the name goes, the node stays.
      this.dropAlias(i);
      this.free(i);
      return;
    }
    const a = this.n[base + N.ALIASES];
    if (a) {
      // The node's own name goes: it takes over another name the kernel knows.
      const parent = this.n[a * STRIDE + N.PARENT];
      const name = Buffer.from(this.name(a));
      this.dropAlias(a);
      this.free(a);
      this.move(i, parent, name);
      return;
    }
    this.unlink(i);
    this.n[base + N.FLAGS] |= NF.DELETED;
  }

  /** Moves `i` to `name` in `parent` (a rename). */
  move(i: number, parent: number, name: Buffer): void {
    const base = i * STRIDE;
    if (!(this.n[base + N.FLAGS] & NF.DELETED)) this.unlink(i);
    this.freeName(this.n[base + N.NAME], this.n[base + N.NAMELEN]);
    this.n[base + N.PARENT] = parent;
    this.n[base + N.NAME] = this.allocName(name);
    this.n[base + N.NAMELEN] = name.length;
    this.n[base + N.FLAGS] &= ~NF.DELETED;
    this.link(i);
  }

  /** Adds a kernel lookup of `i`. */
  ref(i: number): void {
    this.n[i * STRIDE + N.NLOOKUP]++;
    this.n[i * STRIDE + N.FLAGS] &= ~NF.FORGOTTEN;
  }

  /** Drops `count` kernel lookups of `i`; frees the slot at zero. */
  forget(i: number, count: number): void {
    if (i === 1 || !this.valid(i) || this.n[i * STRIDE + N.FLAGS] & NF.ALIAS) return;
    const base = i * STRIDE;
    const left = this.n[base + N.NLOOKUP] - count;
    if (left > 0) {
      this.n[base + N.NLOOKUP] = left;
      return;
    }
    this.n[base + N.NLOOKUP] = 0;
    // A RELEASE can come after the FORGET (the kernel sends forgets first): keep the slot.
    if (this.n[base + N.PT_OPENS] > 0 || this.n[base + N.CACHED_OPENS] > 0) {
      this.n[base + N.FLAGS] |= NF.FORGOTTEN;
      return;
    }
    this.free(i);
  }

  /** Frees a forgotten node once its last open file is released. */
  released(i: number): void {
    const base = i * STRIDE;
    if (
      this.n[base + N.FLAGS] & NF.FORGOTTEN &&
      this.n[base + N.PT_OPENS] === 0 &&
      this.n[base + N.CACHED_OPENS] === 0
    )
      this.free(i);
  }

  private free(i: number): void {
    const base = i * STRIDE;
    if (!(this.n[base + N.FLAGS] & NF.ALIAS)) {
      for (let a = this.n[base + N.ALIASES]; a; ) {
        const next = this.n[a * STRIDE + N.ALIASES];
        this.n[a * STRIDE + N.ALIASES] = 0;
        this.free(a);
        a = next;
      }
      if (this.uino(i)) this.unhashLinks(i);
    }
    if (!(this.n[base + N.FLAGS] & NF.DELETED)) this.unlink(i);
    this.freeName(this.n[base + N.NAME], this.n[base + N.NAMELEN]);
    const gen = this.n[base + N.GEN];
    this.n.fill(0, base, base + STRIDE);
    this.n[base + N.GEN] = gen;
    this.n[base + N.NEXT_FREE] = this.c[C_FREE];
    this.c[C_FREE] = i;
    this.c[C_COUNT]--;
  }

  /**
   * Writes the path of `i` below the root ("a/b/c", "." for the root) into `out` followed by a
   * NUL, and returns its length, or -1 when it does not fit.
   */
  path(i: number, out: Buffer): number {
    if (i === 1) {
      out[0] = 0x2e;
      out[1] = 0;
      return 1;
    }
    // Walk up once to measure, then fill from the end.
    let len = -1;
    for (let j = i; j !== 1; j = this.n[j * STRIDE + N.PARENT]) {
      len += this.n[j * STRIDE + N.NAMELEN] + 1;
      if (len >= out.length) return -1;
    }
    let end = len;
    out[end] = 0;
    for (let j = i; j !== 1; j = this.n[j * STRIDE + N.PARENT]) {
      const base = j * STRIDE;
      const nl = this.n[base + N.NAMELEN];
      const off = this.n[base + N.NAME];
      end -= nl;
      this.nameBuf.copy(out, end, off, off + nl);
      if (end > 0) out[--end] = 0x2f;
    }
    return len;
  }

  private link(i: number): void {
    const base = i * STRIDE;
    const h = hash(this.n[base + N.PARENT], this.name(i)) & (this.c[C_BUCKETS] - 1);
    this.n[base + N.HNEXT] = this.buckets[h];
    this.buckets[h] = i;
  }

  private unlink(i: number): void {
    const base = i * STRIDE;
    const h = hash(this.n[base + N.PARENT], this.name(i)) & (this.c[C_BUCKETS] - 1);
    let j = this.buckets[h];
    if (j === i) {
      this.buckets[h] = this.n[base + N.HNEXT];
      return;
    }
    while (j) {
      const next = this.n[j * STRIDE + N.HNEXT];
      if (next === i) {
        this.n[j * STRIDE + N.HNEXT] = this.n[base + N.HNEXT];
        return;
      }
      j = next;
    }
  }

  private rehash(size: number): void {
    if (size * 4 > (this.b.buckets as GrowableSab).maxByteLength) return;
    this.ensure(this.b.buckets as GrowableSab, size * 4);
    this.buckets.fill(0, 0, size);
    this.c[C_BUCKETS] = size;
    const top = this.c[C_TOP];
    for (let i = 2; i < top; i++) {
      const f = this.n[i * STRIDE + N.FLAGS];
      if (f & NF.USED && !(f & NF.DELETED)) this.link(i);
    }
  }

  private ensure(sab: GrowableSab, bytes: number): void {
    if (sab.byteLength >= bytes) return;
    let size = sab.byteLength;
    while (size < bytes) size *= 2;
    if (size > sab.maxByteLength) size = sab.maxByteLength;
    if (size < bytes) throw new Error('corral fuse: the inode table is full');
    sab.grow(size);
  }

  /** Name chunks: 8-byte classes up to 256 bytes, each with a free list. */
  private allocName(name: Buffer): number {
    const cls = (name.length + 7) >> 3 || 1;
    let off = this.c[C_NAME_FREE + cls];
    if (off) this.c[C_NAME_FREE + cls] = this.nameBuf.readInt32LE(off);
    else {
      off = this.c[C_HEAP_TOP];
      this.c[C_HEAP_TOP] = off + cls * 8;
      this.ensure(this.b.names as GrowableSab, off + cls * 8);
    }
    name.copy(this.nameBuf, off);
    return off;
  }

  private freeName(off: number, len: number): void {
    if (!off) return;
    const cls = (len + 7) >> 3 || 1;
    this.nameBuf.writeInt32LE(this.c[C_NAME_FREE + cls], off);
    this.c[C_NAME_FREE + cls] = off;
  }
}
