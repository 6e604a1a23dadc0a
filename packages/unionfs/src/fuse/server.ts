// A FUSE server's threads: each a worker thread with its own clone of the /dev/fuse fd, reading
// and answering requests synchronously (runSession). The process's main thread only starts
// them and waits; it never blocks on the device, and libuv's pool is never used for it.
import { parentPort, Worker, workerData } from 'node:worker_threads';
import { cloneFuseDevice, rawClose } from '@corral/sys';
import { createSessionShared, type FuseFileSystem, runSession } from './session.js';

/** What each thread gets. */
interface ThreadData {
  devFd: number;
  init: SharedArrayBuffer;
  maxWrite: number;
  debug: boolean;
  fs: unknown;
}

type ThreadMessage = { kind: 'init' } | { kind: 'error'; message: string };

export interface Threads {
  /** Resolves when the kernel's INIT is answered (the mount then works). */
  init: Promise<void>;
  /** Resolves when every thread has ended (the filesystem was unmounted). */
  ended: Promise<void>;
}

/**
 * Starts `count` threads running `module` (which calls serveThread) on the connection of
 * `devFd`, passing `fsData` to the filesystem each builds. SharedArrayBuffers in `fsData` are
 * shared, not copied.
 */
export function startThreads(
  module: URL,
  devFd: number,
  fsData: unknown,
  options: { threads: number; maxWrite: number; debug?: boolean },
): Threads {
  const init = createSessionShared();
  let initDone: () => void;
  let initFailed: (e: Error) => void;
  const initP = new Promise<void>((resolve, reject) => {
    initDone = resolve;
    initFailed = reject;
  });
  const exits: Promise<void>[] = [];
  for (let t = 0; t < options.threads; t++) {
    const data: ThreadData = {
      devFd,
      init,
      maxWrite: options.maxWrite,
      debug: options.debug ?? false,
      fs: fsData,
    };
    const w = new Worker(module, { workerData: data });
    w.on('message', (m: ThreadMessage) => {
      if (m.kind === 'init') initDone();
      else initFailed(new Error(m.message));
    });
    exits.push(
      new Promise((resolve) => {
        w.on('error', (e) => {
          process.stderr.write(`corral fuse: a server thread failed: ${e.stack ?? e}\n`);
          initFailed(e);
        });
        w.on('exit', () => resolve());
      }),
    );
  }
  const ended = Promise.all(exits).then(() => {
    initFailed(new Error('the server threads ended before the kernel sent INIT'));
  });
  return { init: initP, ended };
}

/** The body of a server thread: builds the filesystem from the data and serves until unmount. */
export function serveThread(make: (data: unknown) => FuseFileSystem): void {
  const d = workerData as ThreadData;
  const fs = make(d.fs);
  let fd = d.devFd;
  let cloned = false;
  try {
    fd = cloneFuseDevice(d.devFd);
    cloned = true;
  } catch {
    // A kernel without FUSE_DEV_IOC_CLONE: all threads read the one fd.
  }
  try {
    runSession(fd, fs, new Int32Array(d.init), d.maxWrite, {
      debug: d.debug,
      onInit: () => parentPort?.postMessage({ kind: 'init' } satisfies ThreadMessage),
    });
  } catch (e) {
    parentPort?.postMessage({ kind: 'error', message: (e as Error).message } satisfies ThreadMessage);
    throw e;
  } finally {
    if (cloned) rawClose(fd);
  }
}
