// Reading requests and writing replies of the FUSE protocol, over buffers that each reading
// thread allocates once: no allocation per request on the common paths.
import { STX } from '@corral/sys';
import { SIZE } from './kernel.js';

const TWO32 = 2 ** 32;

/** One request as read from /dev/fuse: the header decoded, the body read in place. */
export class Request {
  /** Bytes read. */
  len = 0;
  opcode = 0;
  nodeid = 0;
  uid = 0;
  gid = 0;
  pid = 0;

  constructor(readonly buf: Buffer) {}

  /** Decodes the header of the `n` bytes just read. */
  decode(n: number): void {
    const b = this.buf;
    this.len = n;
    this.opcode = b.readUInt32LE(4);
    this.nodeid = b.readUInt32LE(16) + b.readUInt32LE(20) * TWO32;
    this.uid = b.readUInt32LE(24);
    this.gid = b.readUInt32LE(28);
    this.pid = b.readUInt32LE(32);
  }

  /** u32 at `o` bytes into the body. */
  u32(o: number): number {
    return this.buf.readUInt32LE(SIZE.IN_HEADER + o);
  }

  i32(o: number): number {
    return this.buf.readInt32LE(SIZE.IN_HEADER + o);
  }

  /** u64 at `o` bytes into the body, as a number (exact below 2^53). */
  u64(o: number): number {
    const p = SIZE.IN_HEADER + o;
    return this.buf.readUInt32LE(p) + this.buf.readUInt32LE(p + 4) * TWO32;
  }

  i64(o: number): number {
    return Number(this.buf.readBigInt64LE(SIZE.IN_HEADER + o));
  }

  /** The NUL-terminated name at `o` bytes into the body, as a view (valid until the next read). */
  name(o: number): Buffer {
    const start = SIZE.IN_HEADER + o;
    const end = this.buf.indexOf(0, start);
    return this.buf.subarray(start, end < 0 || end > this.len ? this.len : end);
  }

  /** The name at `o` with its terminating NUL, for the *at calls (a view, like `name`). */
  cname(o: number): Buffer {
    const start = SIZE.IN_HEADER + o;
    const end = this.buf.indexOf(0, start);
    return this.buf.subarray(start, end < 0 || end >= this.len ? this.len : end + 1);
  }

  /** Offset (into the body) just past the name at `o`. */
  after(o: number): number {
    const end = this.buf.indexOf(0, SIZE.IN_HEADER + o);
    return end - SIZE.IN_HEADER + 1;
  }

  /** Raw bytes of the body from `o` to the end of the request (or `len` bytes). */
  bytes(o: number, len?: number): Buffer {
    const start = SIZE.IN_HEADER + o;
    return this.buf.subarray(start, len === undefined ? this.len : start + len);
  }
}

/** A reply being built after the 16-byte header; the session writes the header. */
export class Reply {
  /** Bytes of the body written so far. */
  len = 0;

  constructor(readonly buf: Buffer) {}

  reset(): void {
    this.len = 0;
  }

  /** Room left in the body. */
  get room(): number {
    return this.buf.length - SIZE.OUT_HEADER - this.len;
  }

  /** The absolute offset of body byte `o`. */
  at(o: number): number {
    return SIZE.OUT_HEADER + o;
  }

  /** Zeroes `n` bytes at the end of the body and returns their absolute offset. */
  reserve(n: number): number {
    const p = SIZE.OUT_HEADER + this.len;
    this.buf.fill(0, p, p + n);
    this.len += n;
    return p;
  }

  u32(v: number): void {
    this.buf.writeUInt32LE(v >>> 0, SIZE.OUT_HEADER + this.len);
    this.len += 4;
  }

  u64(v: number): void {
    const p = SIZE.OUT_HEADER + this.len;
    writeU64(this.buf, p, v);
    this.len += 8;
  }

  bytes(b: Buffer): void {
    b.copy(this.buf, SIZE.OUT_HEADER + this.len);
    this.len += b.length;
  }
}

export function writeU64(buf: Buffer, p: number, v: number): void {
  const lo = v % TWO32;
  buf.writeUInt32LE(lo >>> 0, p);
  buf.writeUInt32LE(Math.floor(v / TWO32) >>> 0, p + 4);
}

/** new_encode_dev of the kernel: the 32-bit device number fuse_attr.rdev carries. */
export function encodeDev(major: number, minor: number): number {
  return ((minor & 0xff) | (major << 8) | ((minor & ~0xff) << 12)) >>> 0;
}

/**
 * Writes a struct fuse_attr (88 bytes) at `p` from a struct statx buffer, with `ino` as the
 * inode number the filesystem reports.
 */
export function writeAttr(buf: Buffer, p: number, stx: Buffer, ino: number): void {
  writeU64(buf, p, ino);
  stx.copy(buf, p + 8, STX.size, STX.size + 16); // size, blocks
  stx.copy(buf, p + 24, STX.atime, STX.atime + 8); // atime sec
  stx.copy(buf, p + 32, STX.mtime, STX.mtime + 8);
  stx.copy(buf, p + 40, STX.ctime, STX.ctime + 8);
  buf.writeUInt32LE(stx.readUInt32LE(STX.atime + 8), p + 48);
  buf.writeUInt32LE(stx.readUInt32LE(STX.mtime + 8), p + 52);
  buf.writeUInt32LE(stx.readUInt32LE(STX.ctime + 8), p + 56);
  buf.writeUInt32LE(stx.readUInt16LE(STX.mode), p + 60);
  buf.writeUInt32LE(stx.readUInt32LE(STX.nlink), p + 64);
  buf.writeUInt32LE(stx.readUInt32LE(STX.uid), p + 68);
  buf.writeUInt32LE(stx.readUInt32LE(STX.gid), p + 72);
  buf.writeUInt32LE(encodeDev(stx.readUInt32LE(STX.rdevMajor), stx.readUInt32LE(STX.rdevMinor)), p + 76);
  buf.writeUInt32LE(stx.readUInt32LE(STX.blksize), p + 80);
  buf.writeUInt32LE(0, p + 84);
}

/** Writes a struct fuse_entry_out (128 bytes) at `p`. `nodeid` 0 is a negative entry. */
export function writeEntry(
  buf: Buffer,
  p: number,
  nodeid: number,
  generation: number,
  entryValid: number,
  attrValid: number,
  stx: Buffer | null,
  ino: number,
): void {
  writeU64(buf, p, nodeid);
  writeU64(buf, p + 8, generation);
  writeU64(buf, p + 16, entryValid);
  writeU64(buf, p + 24, attrValid);
  buf.writeUInt32LE(0, p + 32);
  buf.writeUInt32LE(0, p + 36);
  if (stx) writeAttr(buf, p + 40, stx, ino);
  else buf.fill(0, p + 40, p + 40 + SIZE.ATTR);
}

/** Record length of a fuse_dirent with a name of `n` bytes (8-byte aligned). */
export const direntSize = (n: number): number => (SIZE.DIRENT + n + 7) & ~7;
/** Record length of a fuse_direntplus with a name of `n` bytes. */
export const direntplusSize = (n: number): number => (SIZE.DIRENTPLUS + n + 7) & ~7;

/** Writes a fuse_dirent {ino, off, namelen, type, name} at `p`; returns its record length. */
export function writeDirent(
  buf: Buffer,
  p: number,
  ino: number,
  off: number,
  type: number,
  name: Buffer,
): number {
  const size = direntSize(name.length);
  writeU64(buf, p, ino);
  writeU64(buf, p + 8, off);
  buf.writeUInt32LE(name.length, p + 16);
  buf.writeUInt32LE(type, p + 20);
  name.copy(buf, p + 24);
  buf.fill(0, p + 24 + name.length, p + size);
  return size;
}
