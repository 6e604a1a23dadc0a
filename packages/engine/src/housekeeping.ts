// Containers as a set: Docker's `ps` filters, the size of a container's writable layer
// (`ps -s`), `container prune` and `system df`. One place for the CLI and the daemon.
import { DirFd, isErrno } from '@corral/sys';
import type { EngineContext } from './context.js';
import { EngineError } from './errors.js';
import { getRecord } from './lifecycle.js';
import { type ContainerRecord, statusOf } from './records.js';

/** Docker's filters of `ps` / GET /containers/json, by key. */
export type ContainerFilters = Record<string, string[]>;

const KEYS = ['id', 'name', 'status', 'exited', 'ancestor', 'before', 'since', 'label'];
const STATUSES = ['created', 'restarting', 'running', 'removing', 'paused', 'exited', 'dead'];

/** True when the filters ask for containers that are not running (status, exited): ps -a implied. */
export const filtersImplyAll = (f: ContainerFilters) => Boolean(f.status?.length || f.exited?.length);

/** `K` or `K=V`: every one must match (Docker's label filter). */
export function labelsMatch(labels: Record<string, string>, wanted: readonly string[]): boolean {
  return wanted.every((w) => {
    const i = w.indexOf('=');
    // Own keys only: `label=constructor` must not match every container.
    if (i < 0) return Object.hasOwn(labels, w);
    const k = w.slice(0, i);
    return Object.hasOwn(labels, k) && labels[k] === w.slice(i + 1);
  });
}

/**
 * A test of records against `filters`, checked first: an unknown key or value is an error.
 * `get` finds the container a before/since filter names.
 */
export function containerMatcher(
  get: (ref: string) => ContainerRecord,
  filters: ContainerFilters,
): (r: ContainerRecord) => boolean {
  for (const [k, values] of Object.entries(filters)) {
    if (!KEYS.includes(k)) throw new EngineError('InvalidArgument', `invalid filter '${k}'`);
    if (k === 'status')
      for (const v of values)
        if (!STATUSES.includes(v))
          throw new EngineError('InvalidArgument', `invalid filter 'status=${v}': ${STATUSES.join(', ')}`);
    if (k === 'exited')
      for (const v of values)
        if (!/^-?\d+$/.test(v))
          throw new EngineError('InvalidArgument', `invalid filter 'exited=${v}': an exit code`);
  }
  const created = (ref: string) => Date.parse(get(ref).created);
  const before = filters.before?.map(created);
  const since = filters.since?.map(created);
  const any = (k: string, test: (v: string) => boolean) => !filters[k]?.length || filters[k].some(test);
  const nameTest = (v: string, name: string) => {
    try {
      return new RegExp(v.replace(/^\//, '')).test(name);
    } catch {
      return name.includes(v);
    }
  };
  return (r) => {
    const t = Date.parse(r.created);
    return (
      any('id', (v) => r.id.startsWith(v)) &&
      any('name', (v) => nameTest(v, r.name)) &&
      any('status', (v) => v === statusOf(r)) &&
      any('exited', (v) => r.state.status === 'exited' && String(r.state.exitCode) === v) &&
      any('ancestor', (v) => ancestorMatches(r, v)) &&
      labelsMatch(r.config.labels ?? {}, filters.label ?? []) &&
      (before ?? []).every((b) => t < b) &&
      (since ?? []).every((s) => t > s)
    );
  };
}

function ancestorMatches(r: ContainerRecord, v: string): boolean {
  const withTag = v.includes(':') ? v : `${v}:latest`;
  const image = r.image.includes(':') ? r.image : `${r.image}:latest`;
  const id = r.imageId ?? '';
  return image === withTag || id === v || id.startsWith(`sha256:${v}`) || id.startsWith(v);
}

/** Bytes under a folder (files and symlinks), walked through fds; what vanishes meanwhile is skipped. */
export function treeBytes(path: string): number {
  let dir: DirFd;
  try {
    dir = DirFd.open(path);
  } catch (e) {
    if (isErrno(e, 'ENOENT')) return 0;
    throw e;
  }
  const walk = (d: DirFd): number => {
    let n = 0;
    for (const name of d.names()) {
      try {
        const st = d.lstat(name);
        if (st.isDirectory()) {
          const sub = d.dir(name);
          try {
            n += walk(sub);
          } finally {
            sub.close();
          }
        } else n += st.size;
      } catch (e) {
        if (!isErrno(e, 'ENOENT', 'ELOOP', 'ENOTDIR')) throw e;
      }
    }
    return n;
  };
  try {
    return walk(dir);
  } finally {
    dir.close();
  }
}

/** docker ps -s: the writable layer's bytes (SizeRw) and with the image's (SizeRootFs). */
export function containerSize(ctx: EngineContext, r: ContainerRecord): { rw: number; rootFs: number } {
  const rw = treeBytes(ctx.snapshots(r.hostConfig.storageDriver).upper(r.id));
  const image = r.imageId ? ctx.store.list().find((i) => i.id === r.imageId) : undefined;
  return { rw, rootFs: rw + (image?.size ?? 0) };
}

/** What `system df` reports: one row per image, container and volume, with sizes. */
export interface DiskUsage {
  images: { id: string; repoTags: string[]; created?: string; size: number; containers: number }[];
  containers: {
    id: string;
    name: string;
    image: string;
    command: string;
    created: string;
    state: string;
    status: string;
    sizeRw: number;
    sizeRootFs: number;
  }[];
  volumes: {
    name: string;
    size: number;
    refCount: number;
    labels: Record<string, string>;
    mountpoint: string;
  }[];
}

const PRUNE_KEYS = ['until', 'label', 'label!'];

/**
 * docker container prune: every container that is not running (created or exited), with
 * Docker's `until` and `label` / `label!` filters. Returns the IDs and the bytes of their layers.
 */
export async function pruneContainers(
  ctx: EngineContext,
  remove: (id: string) => Promise<unknown>,
  filters: ContainerFilters = {},
): Promise<{ deleted: string[]; spaceReclaimed: number }> {
  for (const k of Object.keys(filters))
    if (!PRUNE_KEYS.includes(k)) throw new EngineError('InvalidArgument', `invalid filter '${k}'`);
  const until = filters.until?.length ? Math.min(...filters.until.map((v) => parseUntil(v))) : undefined;
  const deleted: string[] = [];
  let spaceReclaimed = 0;
  for (const id of ctx.records.ids()) {
    let r: ContainerRecord;
    try {
      r = getRecord(ctx, id);
    } catch {
      continue; // removed meanwhile
    }
    if (r.state.status === 'running') continue;
    if (until !== undefined && Date.parse(r.created) >= until) continue;
    if (!labelsMatch(r.config.labels ?? {}, filters.label ?? [])) continue;
    if ((filters['label!'] ?? []).some((l) => labelsMatch(r.config.labels ?? {}, [l]))) continue;
    const size = containerSize(ctx, r).rw;
    try {
      await remove(r.id);
    } catch {
      continue; // started or removed meanwhile
    }
    deleted.push(r.id);
    spaceReclaimed += size;
  }
  return { deleted, spaceReclaimed };
}

/** `until` of prune: a timestamp (seconds or RFC 3339) or a duration back from now (`10m`). */
function parseUntil(v: string): number {
  if (/^\d+(\.\d+)?$/.test(v)) return Number(v) * 1000;
  const m = /^(\d+(?:\.\d+)?)(s|m|h)$/.exec(v);
  if (m) return Date.now() - Number(m[1]) * { s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 's' | 'm' | 'h'];
  const t = Date.parse(v);
  if (Number.isNaN(t))
    throw new EngineError('InvalidArgument', `invalid filter 'until=${v}': a time or a duration`);
  return t;
}

/** docker system df's rows: images (with how many containers use each), containers, volumes. */
export function diskUsage(
  ctx: EngineContext,
  volumes: { name: string; mountpoint: string; labels: Record<string, string>; refCount: number }[],
): DiskUsage {
  const records: ContainerRecord[] = [];
  for (const id of ctx.records.ids()) {
    try {
      records.push(getRecord(ctx, id));
    } catch {
      // removed meanwhile
    }
  }
  const images = ctx.store.list().map((i) => ({
    id: i.id,
    repoTags: i.repoTags,
    created: i.created,
    size: i.size,
    containers: records.filter((r) => r.imageId === i.id).length,
  }));
  const containers = records.map((r) => {
    const size = containerSize(ctx, r);
    return {
      id: r.id,
      name: r.name,
      image: r.image,
      command: r.config.cmd.join(' '),
      created: r.created,
      state: statusOf(r),
      status: r.state.status,
      sizeRw: size.rw,
      sizeRootFs: size.rootFs,
    };
  });
  return {
    images,
    containers,
    volumes: volumes.map((v) => ({ ...v, size: treeBytes(v.mountpoint) })),
  };
}
