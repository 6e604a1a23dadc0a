// The `fuse` backend: a union served by a process of its own (src/fuse/main.ts) that speaks
// FUSE on /dev/fuse. mount() starts it and returns once the mount answers; unmounting ends it.
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { UnionFsError } from '../errors.js';
import type {
  BackendName,
  UnionFs,
  UnionMount,
  UnionMountOptions,
  UnionServerExit,
  UnmountOptions,
} from '../types.js';
import { unmountUnion } from '../unmount.js';
import { checkOptions } from '../validate.js';
import type { ServerConfig } from './union/serve.js';

/** The server's entry, compiled (tests that run this file from src/ use the built one). */
const MAIN = fileURLToPath(new URL('./main.js', import.meta.url)).replace(
  /\/src\/fuse\/main\.js$/,
  '/dist/fuse/main.js',
);
/**
 * V8 flags of the server: its garbage collection on its own threads rather than helper threads
 * woken for every young-generation collection (fewer wakeups per request).
 */
const SERVER_NODE_FLAGS = ['--single-threaded-gc'];

/** How long a server may take to mount and answer INIT. */
const START_TIMEOUT_MS = 30_000;

export interface FuseOptions {
  /** Threads serving requests (default 3; one reads /dev/fuse at a time, see session.ts). */
  threads?: number;
  /**
   * overlayfs's `volatile`: copy-ups, fsync and syncfs do not wait for the disk. Faster, and
   * fuse-overlayfs's default for copy-ups; what a crash interrupts may be lost or partial.
   */
  volatile?: boolean;
  /** A file the server appends its errors (and, with `debug`, every request) to. */
  log?: string;
  debug?: boolean;
  /** The node binary that runs the server (default: this process's). */
  node?: string;
}

/** True for the mount types this backend makes. */
export const isFuseUnion = (fsType: string): boolean => fsType === 'fuse.corral-unionfs';

class FuseUnionMount implements UnionMount {
  readonly backend: BackendName = 'fuse';
  readonly readonly: boolean;

  constructor(
    private readonly fs: FuseUnionFs,
    readonly target: string,
    readonly lower: readonly string[],
    readonly upper: string | null,
    readonly work: string | null,
    private readonly child: ChildProcess,
    readonly closed: Promise<UnionServerExit>,
  ) {
    this.readonly = upper === null;
  }

  get pid(): number {
    return this.child.pid as number;
  }

  /** Unmounts, then waits for the server to end (a detached unmount waits for nobody). */
  async unmount(options?: UnmountOptions): Promise<void> {
    await this.fs.unmount(this.target, options);
    if (options?.detach) return;
    // Waiting keeps this process alive, which an unref'd child alone would not.
    this.child.ref();
    try {
      await this.closed;
    } finally {
      this.child.unref();
    }
  }
}

/** Reads the server's one line on its fd 3. */
function readyLine(child: ChildProcess): Promise<string> {
  const pipe = child.stdio[3] as Readable;
  return new Promise((resolve) => {
    let text = '';
    const timer = setTimeout(() => resolve('error the server did not answer in time'), START_TIMEOUT_MS);
    pipe.on('data', (d: Buffer) => {
      text += d.toString();
    });
    pipe.on('end', () => {
      clearTimeout(timer);
      resolve(text.trim() || 'error the server ended without a word');
    });
    pipe.on('error', () => {});
  });
}

/** A userspace union served over FUSE by a process of its own, with overlayfs's semantics. */
export class FuseUnionFs implements UnionFs {
  readonly name: BackendName = 'fuse';

  constructor(private readonly options: FuseOptions = {}) {}

  async mount(options: UnionMountOptions): Promise<UnionMount> {
    const o = checkOptions(options, 'fuse');
    const config: ServerConfig = {
      lower: o.lower,
      upper: o.upper,
      work: o.work,
      target: o.target,
      threads: this.options.threads,
      debug: this.options.debug,
      volatile: this.options.volatile,
    };
    const log = this.options.log ? openSync(this.options.log, 'a', 0o600) : 'ignore';
    let child: ChildProcess;
    try {
      // Its own session: the signals of the caller's terminal are not the server's.
      child = spawn(
        this.options.node ?? process.execPath,
        [...SERVER_NODE_FLAGS, MAIN, JSON.stringify(config)],
        {
          detached: true,
          stdio: ['ignore', 'ignore', log, 'pipe'],
          // Node parses NODE_EXTRA_CA_CERTS's file at start (about 40 ms where it names the
          // system's CA bundle), on the way of the mount; the server makes no TLS connection.
          env: (({ NODE_EXTRA_CA_CERTS: _, ...env }) => env)(process.env),
        },
      );
    } finally {
      if (typeof log === 'number') closeSync(log);
    }
    const closed = new Promise<UnionServerExit>((resolve) => {
      child.on('exit', (code, signal) => resolve({ code, signal }));
      child.on('error', () => resolve({ code: null, signal: null }));
    });
    const line = await readyLine(child);
    if (line !== 'ready') {
      child.kill('SIGKILL');
      await closed;
      const why = line.replace(/^error /, '');
      throw new UnionFsError(
        'MOUNT_FAILED',
        `fuse mount at ${o.target} failed: ${why}${this.options.log ? ` (see ${this.options.log})` : ''}`,
      );
    }
    // The server outlives this process if it must (a detached container).
    child.unref();
    (child.stdio[3] as Readable).destroy();
    return new FuseUnionMount(this, o.target, o.lower, o.upper, o.work, child, closed);
  }

  async unmount(target: string, options: UnmountOptions = {}): Promise<void> {
    unmountUnion(target, options, isFuseUnion, 'a corral fuse union');
  }
}
