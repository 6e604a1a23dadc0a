// The read loop of a FUSE server: one per thread, each reading /dev/fuse synchronously (a
// blocking read on libuv's pool would starve every other fs call of the process), decoding
// the request, calling the filesystem's handler and writing its reply. The INIT handshake is
// answered here; the filesystem only says what it wants. Any filesystem can use this layer.
import { errnoName, rawRead, rawReadable, rawWrite } from '@corral/sys';
import { Reply, Request, writeU64 } from './codec.js';
import { FUSE_KERNEL_MINOR_VERSION, FUSE_KERNEL_VERSION, INIT, OP, OP_NAME, SIZE } from './kernel.js';

/** What a handler returns to send no reply at all (FORGET, BATCH_FORGET, INTERRUPT). */
export const NO_REPLY = -1;

/**
 * Answers one request: 0 sends `out` (its body; the session writes the header), a positive
 * errno sends that error, NO_REPLY sends nothing.
 */
export type Handler = (req: Request, out: Reply) => number;

/** What both sides agreed on in INIT. */
export interface Connection {
  minor: number;
  /** INIT flags granted by both sides (bits above 31 included). */
  flags: number;
  maxWrite: number;
  maxReadahead: number;
  /** FUSE passthrough is on: open replies may carry a backing id. */
  passthrough: boolean;
  /** The /dev/fuse fd this thread reads (for backing ids and notifications). */
  devFd: number;
  /**
   * Hands the reading of /dev/fuse on to an idle thread: for a handler about to wait (for a
   * lock another thread holds), so that requests keep being read meanwhile.
   */
  yieldReader: () => void;
  /**
   * Sends `out` as the answer to `req` now: for a handler with work left after its answer
   * (it then returns NO_REPLY).
   */
  reply: (req: Request, out: Reply) => void;
}

/** What a filesystem asks of the kernel in INIT. */
export interface InitWants {
  /** INIT flags wanted; only those the kernel offers are granted. */
  flags: number;
  maxWrite: number;
  maxPages: number;
  maxBackground: number;
  congestionThreshold: number;
  timeGran: number;
}

/** A filesystem as the session sees it: what it wants at INIT, and a handler per opcode. */
export interface FuseFileSystem {
  wants(kernelFlags: number): InitWants;
  /** Called on every thread once INIT is done, before its first request. */
  start(conn: Connection): void;
  handlers: Partial<Record<number, Handler>>;
  /**
   * Opcodes answered in a few microseconds: the thread that read one keeps reading after it.
   * For any other, the thread hands the reading on to an idle thread when more requests are
   * already waiting (see runSession); the filesystem hands it on itself before long work.
   */
  quick?: ReadonlySet<number>;
}

/**
 * State shared by every thread of a server (an Int32Array over a SharedArrayBuffer of
 * SHARED_INIT_BYTES): whether INIT is done and what it agreed.
 */
export const SHARED_INIT_BYTES = 32;
/** 1 while no thread is reading /dev/fuse: the next idle thread takes the reading. */
const S_TOKEN = 6;
/** Set when the device is gone: every thread ends. */
const S_SHUTDOWN = 7;

/** The state the threads of one server share, ready for the first thread to read. */
export function createSessionShared(): SharedArrayBuffer {
  const sab = new SharedArrayBuffer(SHARED_INIT_BYTES);
  new Int32Array(sab)[S_TOKEN] = 1;
  return sab;
}
const S_DONE = 0;
const S_MINOR = 1;
const S_FLAGS_LO = 2;
const S_FLAGS_HI = 3;
const S_MAX_WRITE = 4;
const S_READAHEAD = 5;

const TWO32 = 2 ** 32;
const PASSTHROUGH_HI = INIT.PASSTHROUGH / TWO32;
const EINTR = 4;
const EAGAIN = 11;
const ENOENT = 2;
const ENODEV = 19;
const ECONNABORTED = 103;
const EIO = 5;
const ENOSYS = 38;
const EPROTO = 71;

/** CORRAL_FUSE_PROFILE=1: each thread prints its count and mean time per opcode at unmount. */
const PROFILE: Record<number, [number, number]> | null = process.env.CORRAL_FUSE_PROFILE ? {} : null;

/** The size of the read buffer for a given max_write: the largest WRITE plus its headers. */
export const readBufferSize = (maxWrite: number): number => maxWrite + 4096;

export interface SessionOptions {
  /** Log every request and its answer to stderr. */
  debug?: boolean;
  /** Called (on the thread that answered it) once INIT is answered. */
  onInit?: (conn: Connection) => void;
}

/**
 * Serves requests read from `devFd` until the filesystem is unmounted (the device answers
 * ENODEV). Returns normally then; throws on anything else the device says.
 */
export function runSession(
  devFd: number,
  fs: FuseFileSystem,
  shared: Int32Array,
  maxWrite: number,
  options: SessionOptions = {},
): void {
  const req = new Request(Buffer.allocUnsafe(readBufferSize(maxWrite)));
  // A reply holds at most one READ or READDIR of max_pages, which max_write bounds here.
  const out = new Reply(Buffer.allocUnsafe(SIZE.OUT_HEADER + maxWrite + 4096));
  let started = false;
  // One thread reads /dev/fuse at a time and keeps reading while the requests are quick, so a
  // run of small requests stays on one warm thread. Before a request that may take long (disk
  // I/O), the reader hands the reading to an idle thread, which is then in read() while the
  // first works: several requests are served at once and none waits behind a slow one.
  let reading = false;
  const handOn = () => {
    if (!reading) return;
    reading = false;
    Atomics.store(shared, S_TOKEN, 1);
    Atomics.notify(shared, S_TOKEN, 1);
  };
  const takeOn = (): boolean => {
    for (;;) {
      if (Atomics.load(shared, S_SHUTDOWN)) return false;
      if (Atomics.compareExchange(shared, S_TOKEN, 1, 0) === 1) {
        reading = true;
        return true;
      }
      Atomics.wait(shared, S_TOKEN, 0);
    }
  };
  const quick = fs.quick ?? new Set<number>();
  for (;;) {
    if (!reading && !takeOn()) return;
    const n = rawRead(devFd, req.buf);
    if (n < 0) {
      const e = -n;
      if (e === EINTR || e === EAGAIN || e === ENOENT) continue;
      if (e === ENODEV || e === ECONNABORTED) {
        Atomics.store(shared, S_SHUTDOWN, 1);
        Atomics.store(shared, S_TOKEN, 1);
        Atomics.notify(shared, S_TOKEN);
        if (PROFILE)
          process.stderr.write(
            `profile ${Object.entries(PROFILE)
              .map(
                ([op, [c, us]]) =>
                  `${Number(op) >= 1000 ? `send ${OP_NAME[Number(op) - 1000]}` : OP_NAME[Number(op)]}: ${c} x ${(us / c).toFixed(1)}us`,
              )
              .join(', ')}\n`,
          );
        return;
      }
      throw new Error(
        `reading /dev/fuse: ${errnoName(e)}${e === 22 ? ' (read buffer smaller than max_write plus a page)' : ''}`,
      );
    }
    req.decode(n);
    out.reset();
    // A request that is not quick is handed on when others are already waiting, and by the
    // filesystem itself before anything long (a copy-up, an fsync).
    if (!quick.has(req.opcode) && rawReadable(devFd)) handOn();
    let result: number;
    if (req.opcode === OP.INIT) {
      result = answerInit(req, out, fs, shared);
      if (result === 0) {
        send(devFd, req, out, 0, options.debug);
        const conn = connection(shared, devFd, handOn, options.debug);
        if (options.debug)
          process.stderr.write(
            `fuse: protocol 7.${conn.minor}, max_write ${conn.maxWrite}, passthrough ${conn.passthrough ? 'on' : 'off'}\n`,
          );
        fs.start(conn);
        started = true;
        options.onInit?.(conn);
        continue;
      }
    } else {
      // The kernel sends nothing else before INIT is answered, on whichever thread.
      if (!started) {
        fs.start(connection(shared, devFd, handOn, options.debug));
        started = true;
      }
      const h = fs.handlers[req.opcode];
      if (!h) result = ENOSYS;
      else {
        try {
          const t0 = PROFILE ? process.hrtime.bigint() : 0n;
          result = h(req, out);
          if (PROFILE) {
            const p = PROFILE[req.opcode] ?? [0, 0];
            PROFILE[req.opcode] = p;
            p[0]++;
            p[1] += Number(process.hrtime.bigint() - t0) / 1000;
          }
        } catch (e) {
          process.stderr.write(
            `corral fuse: ${OP_NAME[req.opcode] ?? req.opcode} on node ${req.nodeid}: ${(e as Error).stack ?? e}\n`,
          );
          result = EIO;
        }
      }
    }
    if (result === NO_REPLY) {
      if (options.debug) process.stderr.write(`fuse: ${OP_NAME[req.opcode]} ${req.nodeid} (no reply)\n`);
      continue;
    }
    const ts = PROFILE ? process.hrtime.bigint() : 0n;
    send(devFd, req, out, result, options.debug);
    if (PROFILE) {
      const p = PROFILE[1000 + req.opcode] ?? [0, 0];
      PROFILE[1000 + req.opcode] = p;
      p[0]++;
      p[1] += Number(process.hrtime.bigint() - ts) / 1000;
    }
  }
}

/** Writes the reply to `req`: `out`'s body when `error` is 0, else the header alone. */
function send(devFd: number, req: Request, out: Reply, error: number, debug?: boolean): void {
  const b = out.buf;
  const len = SIZE.OUT_HEADER + (error === 0 ? out.len : 0);
  b.writeUInt32LE(len, 0);
  b.writeInt32LE(-error, 4);
  req.buf.copy(b, 8, 8, 16); // unique
  if (debug) {
    process.stderr.write(
      `fuse: ${OP_NAME[req.opcode] ?? req.opcode} node ${req.nodeid} -> ${error ? errnoName(error) : `${out.len} bytes`}\n`,
    );
  }
  const w = rawWrite(devFd, b, len);
  // ENOENT: the request was interrupted meanwhile and its answer is not wanted.
  if (w < 0 && -w !== ENOENT && -w !== ENODEV && -w !== ECONNABORTED) {
    process.stderr.write(`corral fuse: writing the reply to ${OP_NAME[req.opcode]}: ${errnoName(-w)}\n`);
  }
}

function connection(shared: Int32Array, devFd: number, yieldReader: () => void, debug?: boolean): Connection {
  const flags = (shared[S_FLAGS_LO] >>> 0) + (shared[S_FLAGS_HI] >>> 0) * TWO32;
  return {
    minor: shared[S_MINOR],
    flags,
    maxWrite: shared[S_MAX_WRITE],
    maxReadahead: shared[S_READAHEAD],
    passthrough: Math.floor(flags / INIT.PASSTHROUGH) % 2 === 1,
    devFd,
    yieldReader,
    reply: (req, out) => send(devFd, req, out, 0, debug),
  };
}

/** Answers FUSE_INIT: agrees on the version and the flags both sides know, records them. */
function answerInit(req: Request, out: Reply, fs: FuseFileSystem, shared: Int32Array): number {
  const major = req.u32(0);
  const minor = req.u32(4);
  if (major !== FUSE_KERNEL_VERSION) {
    // A newer major: answer ours and wait for the kernel to ask again (it never has, for 7).
    out.u32(FUSE_KERNEL_VERSION);
    out.u32(FUSE_KERNEL_MINOR_VERSION);
    return major > FUSE_KERNEL_VERSION ? 0 : EPROTO;
  }
  if (minor < 31) return EPROTO; // older than any kernel corral supports (5.x)
  const maxReadahead = req.u32(8);
  let kflags = req.u32(12);
  if (kflags & INIT.INIT_EXT) kflags += req.u32(16) * TWO32;
  const want = fs.wants(kflags);
  let lo = ((want.flags % TWO32) & (kflags % TWO32)) >>> 0;
  const hi = (Math.floor(want.flags / TWO32) & Math.floor(kflags / TWO32)) >>> 0;
  // Passthrough and the writeback cache exclude each other: passthrough wins.
  if (hi & PASSTHROUGH_HI && lo & INIT.WRITEBACK_CACHE) lo = (lo & ~INIT.WRITEBACK_CACHE) >>> 0;
  if (hi) lo = (lo | INIT.INIT_EXT) >>> 0;
  const agreed = Math.min(minor, FUSE_KERNEL_MINOR_VERSION);
  const p = out.reserve(SIZE.INIT_OUT);
  const b = out.buf;
  b.writeUInt32LE(FUSE_KERNEL_VERSION, p);
  b.writeUInt32LE(agreed, p + 4);
  b.writeUInt32LE(maxReadahead, p + 8);
  b.writeUInt32LE(lo, p + 12);
  b.writeUInt16LE(want.maxBackground, p + 16);
  b.writeUInt16LE(want.congestionThreshold, p + 18);
  b.writeUInt32LE(want.maxWrite, p + 20);
  b.writeUInt32LE(want.timeGran, p + 24);
  b.writeUInt16LE(want.maxPages, p + 28);
  b.writeUInt16LE(0, p + 30); // map_alignment
  b.writeUInt32LE(hi, p + 32); // flags2
  // max_stack_depth: the layers under a passthrough file are plain filesystems (depth 1).
  b.writeUInt32LE(hi & PASSTHROUGH_HI ? 1 : 0, p + 36);
  shared[S_MINOR] = agreed;
  shared[S_FLAGS_LO] = lo | 0;
  shared[S_FLAGS_HI] = hi | 0;
  shared[S_MAX_WRITE] = want.maxWrite;
  shared[S_READAHEAD] = maxReadahead;
  Atomics.store(shared, S_DONE, 1);
  return 0;
}

/** Writes a notification (unique 0, the code in the error field) with `body`. */
export function notify(devFd: number, code: number, body: Buffer): number {
  const b = Buffer.allocUnsafe(SIZE.OUT_HEADER + body.length);
  b.writeUInt32LE(b.length, 0);
  b.writeInt32LE(code, 4);
  writeU64(b, 8, 0);
  body.copy(b, SIZE.OUT_HEADER);
  return rawWrite(devFd, b, b.length);
}
