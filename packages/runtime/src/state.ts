// What the runtime remembers of a container (ROOT/ID/state.json) and how its status is read
// from the kernel. Light on purpose (no native module): `corral-runtime state`, which consumers
// call often, loads this and little else.
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Cgroup } from '@corral/cgroups';
import { RuntimeError } from './errors.js';
import type { OciHooks, OciSpec } from './spec.js';

/** What the runtime remembers of a container, in ROOT/ID/state.json. */
export interface StoredState {
  id: string;
  bundle: string;
  rootfs: string;
  pid: number;
  /** Start time of the init in clock ticks: with the pid it names one process for good. */
  startTime: number;
  created: string;
  annotations: Record<string, string>;
  /** The container's cgroup path as given to openCgroup, or null when it has none. */
  cgroupsPath: string | null;
  /** The creator's own cgroups (/proc/self/cgroup): a relative cgroupsPath resolves against them. */
  cgroupOwn?: { id: number; controllers: string[]; path: string }[];
  /** The cgroup's folder in each hierarchy (v1: by controllers, v2: `unified`). */
  cgroupDirs?: Record<string, string>;
  /** The file that says whether the cgroup is frozen, and the value that means frozen. */
  freezer?: { file: string; frozen: string };
  /** The pids limit, written at start: the Node init's own threads must not count against it. */
  pidsLimit?: number;
  /** Hooks run by later commands (start, delete), kept in case the bundle goes. */
  hooks?: Pick<OciHooks, 'poststart' | 'poststop'>;
}

/**
 * A container's status in the OCI runtime spec's words (`runc state`). `creating` is never
 * reported: `create` returns once the init waits at its exec fifo (`created`). @corral/engine
 * speaks Docker's words (`exited` for `stopped`) and maps these in one place.
 */
export type OciStatus = 'created' | 'running' | 'paused' | 'stopped';

/** The OCI `state` of a container. */
export interface ContainerState {
  ociVersion: string;
  id: string;
  status: OciStatus;
  pid: number;
  bundle: string;
  rootfs: string;
  created: string;
  annotations: Record<string, string>;
}

/** The version of the runtime spec this runtime implements. */
export const OCI_VERSION = '1.2.0';

export const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}$/;

/** Makes a new container's state folder (and the root above it): an error if the id is taken. */
export function makeStateDir(root: string, id: string): string {
  const dir = stateDir(root, id);
  mkdirSync(root, { recursive: true, mode: 0o700 });
  try {
    mkdirSync(dir, { mode: 0o700 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST')
      throw new RuntimeError(`container ${id} already exists`);
    throw e;
  }
  return dir;
}

/**
 * The cgroup a container gets: the one its spec names, else the caller's default, else one of
 * its own when the spec asks for limits; none otherwise (a null default: none).
 */
export function cgroupsPathOf(spec: OciSpec, id: string, defaultPath?: string | null): string | null {
  if (spec.linux?.cgroupsPath) return spec.linux.cgroupsPath;
  if (defaultPath !== undefined) return defaultPath;
  return spec.linux?.resources ? `corral-${id}` : null;
}

/** The folder of one container's state. */
export function stateDir(root: string, id: string): string {
  if (!ID_RE.test(id))
    throw new RuntimeError(`invalid container id ${JSON.stringify(id)}: use letters, digits, _ . + -`);
  return join(root, id);
}

export function readState(root: string, id: string): StoredState {
  const path = join(stateDir(root, id), 'state.json');
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT')
      throw new RuntimeError(`container ${id} does not exist`, 1);
    throw e;
  }
  try {
    return JSON.parse(text) as StoredState;
  } catch (e) {
    // The remedy is data: a front-end names its own repair command.
    throw new RuntimeError(`the state file ${path} is damaged (${(e as Error).message})`, 125, {
      repair: 'system-check',
    });
  }
}

export function writeAtomic(path: string, data: string): void {
  writeFileSync(`${path}.tmp`, data, { mode: 0o600 });
  renameSync(`${path}.tmp`, path);
}

/** Fields of /proc/PID/stat after the command name, or null when the process is gone. */
function procStat(pid: number): string[] | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm may hold spaces and parentheses: fields start after the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

/** True while the init named by the state (PID and start time) lives and is not a zombie. */
export function isAlive(st: StoredState): boolean {
  const f = procStat(st.pid);
  return f !== null && Number(f[19]) === st.startTime && f[0] !== 'Z';
}

function isFrozen(st: StoredState): boolean {
  if (!st.freezer) return false;
  try {
    return readFileSync(st.freezer.file, 'utf8').trim() === st.freezer.frozen;
  } catch {
    return false;
  }
}

export function statusOf(root: string, st: StoredState): OciStatus {
  if (!isAlive(st)) return 'stopped';
  if (existsSync(join(root, st.id, 'exec.fifo'))) return 'created';
  return isFrozen(st) ? 'paused' : 'running';
}

export function containerState(root: string, st: StoredState): ContainerState {
  return {
    ociVersion: OCI_VERSION,
    id: st.id,
    status: statusOf(root, st),
    pid: st.pid,
    bundle: st.bundle,
    rootfs: st.rootfs,
    created: st.created,
    annotations: st.annotations,
  };
}

/** The file that says whether the cgroup is frozen, and the value that means frozen. */
export function freezerOf(cgroup: Cgroup): StoredState['freezer'] {
  if (cgroup.backend === 'v1') {
    const dir = Object.entries(cgroup.dirs).find(([name]) => name.split(',').includes('freezer'))?.[1];
    return dir ? { file: join(dir, 'freezer.state'), frozen: 'FROZEN' } : undefined;
  }
  const dir = Object.values(cgroup.dirs)[0];
  return dir ? { file: join(dir, 'cgroup.freeze'), frozen: '1' } : undefined;
}
