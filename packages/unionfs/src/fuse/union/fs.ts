// The union as a FUSE filesystem: what it asks for at INIT and which handler answers each
// opcode. Handlers that read or change the tree run under the node table's lock; reads and
// writes of open files (and the calls that only need an fd) do not.
import type { Reply, Request } from '../codec.js';
import { INIT, OP } from '../kernel.js';
import type { Connection, FuseFileSystem, Handler, InitWants } from '../session.js';
import { Layers } from './layers.js';
import { createNodeBuffers, type NodeBuffers, NodeTable } from './nodes.js';
import * as dir from './ops-dir.js';
import type { Op } from './ops-entry.js';
import * as entry from './ops-entry.js';
import * as file from './ops-file.js';
import * as rd from './ops-readdir.js';
import { createTables, type SharedTables, Union } from './union.js';

/** What every thread of one union server shares: the layers' fds and the tables. */
export interface UnionShared {
  layerFds: number[];
  writable: boolean;
  workFd: number;
  devIndex: number[];
  /** overlayfs's `volatile`: no sync of any kind reaches the disk (copy-up, fsync, syncfs). */
  volatile: boolean;
  nodes: NodeBuffers;
  tables: SharedTables;
}

export function createUnionShared(
  layerFds: number[],
  writable: boolean,
  workFd: number,
  devIndex: number[],
  volatile = false,
): UnionShared {
  return {
    layerFds,
    writable,
    workFd,
    devIndex,
    volatile,
    nodes: createNodeBuffers(),
    tables: createTables(),
  };
}

export const MAX_WRITE = 1 << 20;

/** Opcodes answered without the table's lock, from the open file alone. */
const UNLOCKED = new Set<number>([
  OP.READ,
  OP.WRITE,
  OP.FSYNC,
  OP.FSYNCDIR,
  OP.FALLOCATE,
  OP.LSEEK,
  OP.COPY_FILE_RANGE,
]);

export class UnionFileSystem implements FuseFileSystem {
  readonly union: Union;
  readonly handlers: Partial<Record<number, Handler>>;

  constructor(shared: UnionShared) {
    const nodes = new NodeTable(shared.nodes);
    const layers = new Layers(nodes, shared.layerFds, shared.writable, shared.workFd, shared.devIndex);
    const u = new Union(nodes, layers, shared.tables, shared.volatile);
    this.union = u;
    const locked =
      (op: Op): Handler =>
      (req: Request, out: Reply) => {
        nodes.lock();
        try {
          return op(u, req, out);
        } finally {
          layers.endRequest();
          nodes.unlock();
        }
      };
    const free =
      (op: Op): Handler =>
      (req: Request, out: Reply) =>
        op(u, req, out);
    const lockedGetxattr = locked(entry.getxattr);
    this.handlers = {
      [OP.LOOKUP]: locked(entry.lookup),
      [OP.FORGET]: locked(entry.forget),
      [OP.BATCH_FORGET]: locked(entry.batchForget),
      [OP.GETATTR]: locked(entry.getattr),
      [OP.SETATTR]: locked(entry.setattr),
      [OP.READLINK]: locked(entry.readlink),
      [OP.STATFS]: free(entry.statfs),
      [OP.ACCESS]: locked(entry.access),
      [OP.GETXATTR]: (req: Request, out: Reply) =>
        entry.capabilityFree(u, req, out) || lockedGetxattr(req, out),
      [OP.LISTXATTR]: locked(entry.listxattr),
      [OP.SETXATTR]: locked(entry.setxattr),
      [OP.REMOVEXATTR]: locked(entry.removexattr),
      [OP.MKDIR]: locked(dir.mkdir),
      [OP.MKNOD]: locked(dir.mknod),
      [OP.SYMLINK]: locked(dir.symlink),
      [OP.LINK]: locked(dir.link),
      [OP.UNLINK]: locked(dir.unlink),
      [OP.RMDIR]: locked(dir.rmdir),
      [OP.RENAME]: locked(dir.rename1),
      [OP.RENAME2]: locked(dir.rename2),
      [OP.OPENDIR]: locked(rd.opendir),
      [OP.READDIR]: locked(rd.readdir),
      [OP.READDIRPLUS]: locked(rd.readdirplus),
      [OP.RELEASEDIR]: locked(rd.releasedir),
      [OP.FSYNCDIR]: free(rd.fsyncdir),
      [OP.OPEN]: locked(file.open),
      [OP.CREATE]: locked(file.create),
      [OP.TMPFILE]: locked(file.tmpfile),
      [OP.READ]: free(file.read),
      [OP.WRITE]: free(file.write),
      [OP.FLUSH]: free(file.flush),
      [OP.RELEASE]: locked(file.release),
      [OP.FSYNC]: free(file.fsync),
      [OP.FALLOCATE]: free(file.fallocate),
      [OP.LSEEK]: free(file.lseek),
      [OP.COPY_FILE_RANGE]: free(file.copyFileRange),
      // No reply: each request is answered synchronously, so there is nothing to interrupt.
      [OP.INTERRUPT]: () => -1,
      [OP.DESTROY]: () => 0,
    };
    // READ too: a READ of a lower file is a splice from the page cache, and the kernel's
    // readahead keeps the next one waiting, so handing the reading on at each one only made
    // the threads take turns (measured: sequential reads a third slower).
    this.quick = new Set(
      Object.keys(this.handlers)
        .map(Number)
        .filter((op) => !UNLOCKED.has(op) || op === OP.READ),
    );
  }

  /**
   * The operations under the table's lock, which other threads wait for anyway: the thread
   * that read one keeps reading after it. Those that can take long (a copy-up, a big listing)
   * hand the reading on themselves (conn.yieldReader); reads, writes and syncs of open files,
   * which run without the lock, always do, so that they run beside everything else.
   */
  readonly quick: ReadonlySet<number>;

  wants(kernelFlags: number): InitWants {
    let flags =
      INIT.ASYNC_READ |
      INIT.ATOMIC_O_TRUNC |
      INIT.BIG_WRITES |
      INIT.DO_READDIRPLUS |
      INIT.PARALLEL_DIROPS |
      INIT.MAX_PAGES |
      INIT.CACHE_SYMLINKS |
      INIT.HANDLE_KILLPRIV_V2 |
      // The kernel enforces the ACLs in system.posix_acl_* (read with GETXATTR) and leaves
      // the umask to the server (ops-dir.ts prepareCreate).
      INIT.POSIX_ACL |
      INIT.DONT_MASK |
      INIT.NO_OPENDIR_SUPPORT |
      INIT.INIT_EXT;
    flags += INIT.PASSTHROUGH;
    // Without passthrough, the kernel's writeback cache batches small writes; both at once
    // the kernel refuses.
    if (Math.floor(kernelFlags / INIT.PASSTHROUGH) % 2 === 0) flags += INIT.WRITEBACK_CACHE;
    return {
      flags,
      maxWrite: MAX_WRITE,
      maxPages: 256,
      maxBackground: 64,
      congestionThreshold: 48,
      timeGran: 1,
    };
  }

  start(conn: Connection): void {
    this.union.conn = conn;
    this.union.nodes.onContention = conn.yieldReader;
  }
}
