// start, and the removal of a stopped container's cgroups and state, on the stored state alone:
// no native module and no cgroup backend. podman and containerd's shim call corral-runtime for
// each (a Node start each); this keeps those two commands to what they touch.
import {
  closeSync,
  constants,
  existsSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  rmdirSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { RuntimeError } from './errors.js';
import { hasHooks, runHooks } from './hooks.js';
import { isAlive, OCI_VERSION, readState, type StoredState, statusOf } from './state.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The state as a hook reads it. */
export function hookStateOf(st: StoredState, status: 'creating' | 'created' | 'running' | 'stopped') {
  return {
    ociVersion: OCI_VERSION,
    id: st.id,
    status,
    pid: st.pid,
    bundle: st.bundle,
    annotations: st.annotations,
  };
}

/**
 * Lets a created container's program run: writes the pids limit held back at create (the
 * init's Node threads must not count against it), opens the exec fifo the init waits on and
 * reads its byte, then runs the poststart hooks. Returns a hook's failure (the caller kills the
 * container, as runc does) or null.
 */
export async function startContainer(root: string, id: string): Promise<Error | null> {
  const st = readState(root, id);
  const status = statusOf(root, st);
  if (status !== 'created')
    throw new RuntimeError(`container ${id} is ${status}, not created: it cannot be started`);
  if (st.pidsLimit !== undefined) {
    const dir = st.cgroupDirs?.pids ?? st.cgroupDirs?.unified;
    if (dir) writeFileSync(join(dir, 'pids.max'), st.pidsLimit < 0 ? 'max' : String(st.pidsLimit));
  }
  const fifo = join(root, id, 'exec.fifo');
  // Never blocks: the init may be gone. (fs opens every fd close-on-exec.)
  const fd = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const buf = Buffer.alloc(1);
    const readByte = () => {
      try {
        return readSync(fd, buf, 0, 1, null) === 1;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
        return false;
      }
    };
    for (;;) {
      if (readByte()) break;
      // A quick program may have run and ended already: its init wrote the byte first.
      if (!isAlive(st)) {
        if (readByte()) break;
        throw new RuntimeError(`container ${id} died before it started`);
      }
      await sleep(1);
    }
  } finally {
    closeSync(fd);
  }
  unlinkSync(fifo);
  if (!hasHooks(st.hooks, 'poststart')) return null;
  try {
    runHooks(st.hooks, 'poststart', hookStateOf(st, 'running'));
    return null;
  } catch (e) {
    return e as Error;
  }
}

/** `dir` and the folders beneath it, deepest first (the order rmdir needs). */
function subtree(dir: string): string[] {
  let entries: import('node:fs').Dirent[];
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  return [...entries.filter((e) => e.isDirectory()).flatMap((e) => subtree(join(dir, e.name))), dir];
}

/** PIDs in the container's cgroups, or null when the state has no cgroup folders. */
export function cgroupPids(st: StoredState): number[] | null {
  if (!st.cgroupDirs) return null;
  const pids = new Set<number>();
  for (const dir of Object.values(st.cgroupDirs))
    for (const d of subtree(dir)) {
      try {
        for (const p of readFileSync(join(d, 'cgroup.procs'), 'utf8').split('\n')) if (p) pids.add(Number(p));
      } catch {
        // gone meanwhile
      }
    }
  return [...pids];
}

/**
 * The OOM kills the container's memory cgroup counted, read from its folders as the state
 * names them (v1 memory.oom_control, v2 memory.events: `oom_kill N`); null when the state
 * names none, or none of them has the count (a kernel before 4.13).
 */
export function cgroupOomKills(st: StoredState): number | null {
  for (const dir of Object.values(st.cgroupDirs ?? {}))
    for (const file of ['memory.oom_control', 'memory.events']) {
      let text: string;
      try {
        text = readFileSync(join(dir, file), 'utf8');
      } catch {
        continue; // not the memory hierarchy, or gone
      }
      const m = /^oom_kill (\d+)$/m.exec(text);
      if (m) return Number(m[1]);
    }
  return null;
}

/** Removes the container's cgroup folders (empty of processes), retrying while the kernel lets tasks go. */
export async function removeCgroupDirs(st: StoredState, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (const dir of Object.values(st.cgroupDirs ?? {})) {
    for (const d of subtree(dir)) {
      for (let delay = 1; ; delay = Math.min(delay * 2, 50)) {
        try {
          rmdirSync(d);
          break;
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code;
          if (code === 'ENOENT') break;
          if (code !== 'EBUSY' || Date.now() > end)
            throw new RuntimeError(`removing cgroup ${d}: ${(e as Error).message}`);
          await sleep(delay);
        }
      }
    }
  }
}

/** Runs the poststop hooks; their failures come back as warnings (the spec's rule). */
export function poststop(st: StoredState): string[] {
  const warnings: string[] = [];
  for (const [i, hook] of (st.hooks?.poststop ?? []).entries()) {
    try {
      runHooks({ poststop: [hook] }, 'poststop', hookStateOf(st, 'stopped'));
    } catch (e) {
      warnings.push(`poststop hook #${i}: ${(e as Error).message}`);
    }
  }
  return warnings;
}

/** True when the stored state names cgroup folders and the container can be removed without a kill. */
export function removableWithoutKill(root: string, st: StoredState): boolean {
  return st.cgroupDirs !== undefined && statusOf(root, st) === 'stopped' && existsSync(join(root, st.id));
}
