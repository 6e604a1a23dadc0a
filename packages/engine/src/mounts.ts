// A container's mounts: planned at create (every request parsed and checked first, then bind
// sources and volumes made), turned into the OCI spec's mounts at each start (volumes filled
// from the image, tmpfs options), shown by inspect, and the anonymous volumes removed with the
// container. The runtime mounts each one on its target opened inside the container's root.
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import type { OciMount } from '@corral/runtime';
import { flock, LOCK } from '@corral/sys';
import type { EngineContext } from './context.js';
import { copyUp } from './copy-up.js';
import { EngineError } from './errors.js';
import {
  type MountPoint,
  type MountRequest,
  mountPointOf,
  parseTmpfs,
  parseTmpfsFlag,
  parseVolumeSpec,
  parseVolumesFrom,
} from './mount-parse.js';
import type { ContainerRecord } from './records.js';
import { VolumeStore, volumeUsers } from './volumes.js';

/** The mount requests of `run` / `create` (Docker's flags and HostConfig fields). */
export interface MountCreateOptions {
  /** `-v` / HostConfig.Binds: HOST:CTR[:MODE], NAME:CTR[:MODE], CTR. */
  volumes?: string[];
  /** `--mount` / HostConfig.Mounts. */
  mounts?: MountRequest[];
  /** `--tmpfs PATH[:OPTS]` strings, or HostConfig.Tmpfs (path to options). */
  tmpfs?: string[] | Record<string, string>;
  /** `--volumes-from CONTAINER[:ro|rw]`. */
  volumesFrom?: string[];
  /** Config.Volumes of the API: anonymous volumes, like the image's VOLUME paths. */
  anonymousVolumes?: string[];
}

/** Docker's inspect entry of a mount. */
export interface MountView {
  Type: 'bind' | 'volume' | 'tmpfs';
  Name?: string;
  Source: string;
  Destination: string;
  Driver?: string;
  Mode: string;
  RW: boolean;
  Propagation: string;
}

const newVolumeName = () => randomBytes(32).toString('hex');

/**
 * Every mount a container asks for, checked: volumes-from first, then -v, --mount and --tmpfs
 * (one target twice among these is an error), then the image's VOLUME paths not covered. Bad
 * input fails here, before `make` creates anything.
 */
export function planMounts(
  ctx: EngineContext,
  o: MountCreateOptions,
  imageVolumes: string[],
): { mounts: MountPoint[]; make: () => string[] } {
  const explicit: MountPoint[] = [
    ...(o.volumes ?? []).map((v) => parseVolumeSpec(v)),
    ...(o.mounts ?? []).map((m) => mountPointOf(m)),
    ...(Array.isArray(o.tmpfs)
      ? o.tmpfs.map((t) => parseTmpfsFlag(t))
      : Object.entries(o.tmpfs ?? {}).map(([p, opts]) => parseTmpfs(p, opts || undefined))),
  ];
  const seen = new Set<string>();
  for (const m of explicit) {
    if (seen.has(m.target)) throw new EngineError('InvalidArgument', `Duplicate mount point: ${m.target}`);
    seen.add(m.target);
  }
  for (const m of explicit)
    if (m.type === 'bind' && m.origin === 'mount' && !existsSync(m.source))
      throw new EngineError(
        'InvalidArgument',
        `--mount: invalid mount config for type "bind": bind source path does not exist: ${m.source}`,
      );
  const byTarget = new Map<string, MountPoint>();
  for (const spec of o.volumesFrom ?? []) {
    const { container, mode } = parseVolumesFrom(spec);
    const from = ctx.records.resolve(container);
    for (const m of from.hostConfig.mounts ?? []) {
      if (m.type === 'tmpfs') continue; // Docker shares volumes and binds, not tmpfs
      // The volume stays the other container's: this one never removes it.
      const { anonymous: _, ...rest } = m;
      byTarget.set(m.target, { ...rest, readonly: mode ? mode === 'ro' : m.readonly, origin: 'from' });
    }
  }
  for (const m of explicit) byTarget.set(m.target, m);
  for (const path of [...imageVolumes, ...(o.anonymousVolumes ?? [])]) {
    const m = parseVolumeSpec(path, 'VOLUME');
    if (!byTarget.has(m.target)) byTarget.set(m.target, { ...m, origin: 'image' });
  }
  const mounts = [...byTarget.values()].map((m) =>
    m.type === 'volume' && !m.source ? { ...m, source: newVolumeName() } : m,
  );
  const make = () => {
    const store = new VolumeStore(ctx.root);
    const made: string[] = [];
    for (const m of mounts) {
      if (m.type === 'bind' && m.origin === 'bind' && !existsSync(m.source))
        mkdirSync(m.source, { recursive: true, mode: 0o755 });
      if (m.type !== 'volume') continue;
      const { record, created } = store.create({
        name: m.source,
        anonymous: m.anonymous ?? false,
        labels: m.volumeLabels,
        options: m.volumeOptions,
      });
      if (created) {
        made.push(record.name);
        ctx.events.emit('volume', 'create', record.name, { driver: 'local' });
      }
    }
    return made;
  };
  return { mounts, make };
}

/** Runs `f` holding an exclusive flock of folder `dir` (other engines wait; `f` is synchronous). */
function withLock<T>(dir: string, f: () => T): T {
  const fd = openSync(dir, 'r');
  try {
    flock(fd, LOCK.EX);
    return f();
  } finally {
    closeSync(fd); // drops the lock
  }
}

/** Mounts sort parents first (Docker: by the number of path components), so none hides another. */
const depth = (p: string) => p.split('/').filter(Boolean).length;

/**
 * The OCI mounts of a container about to start, its root mounted at `rootfs`: volumes are
 * (re)made when missing and filled from the image when empty, bind sources made for -v.
 */
export function ociMounts(ctx: EngineContext, r: ContainerRecord, rootfs: string): OciMount[] {
  const store = new VolumeStore(ctx.root);
  const out: { depth: number; m: OciMount }[] = [];
  for (const m of r.hostConfig.mounts ?? []) {
    const rw = m.readonly ? 'ro' : 'rw';
    if (m.type === 'tmpfs') {
      out.push({
        depth: depth(m.target),
        m: {
          destination: m.target,
          type: 'tmpfs',
          source: 'tmpfs',
          options: ['noexec', 'nosuid', 'nodev', ...(m.tmpfsOptions ?? []), 'rprivate'],
        },
      });
      continue;
    }
    let source = m.source;
    if (m.type === 'volume') {
      const record = store.read(m.source) ?? store.create({ name: m.source, anonymous: m.anonymous }).record;
      source = store.source(record);
      if (!m.noCopy) {
        try {
          // Two containers starting with one new volume: one fills it, the other finds it full.
          withLock(store.path(m.source), () => copyUp(rootfs, m.target, source));
        } catch (e) {
          throw new EngineError(
            'CannotStart',
            `filling volume ${m.source} from the image's ${m.target}: ${(e as Error).message}`,
          );
        }
      }
    } else if (!existsSync(source)) {
      if (m.origin !== 'bind')
        throw new EngineError(
          'CannotStart',
          `invalid mount config for type "bind": bind source path does not exist: ${source}`,
        );
      mkdirSync(source, { recursive: true, mode: 0o755 });
    }
    out.push({
      depth: depth(m.target),
      m: {
        destination: m.target,
        type: 'bind',
        source,
        options: [m.nonRecursive ? 'bind' : 'rbind', m.propagation ?? 'rprivate', rw],
      },
    });
  }
  return out.sort((a, b) => a.depth - b.depth).map((x) => x.m);
}

/** Docker's inspect `Mounts` of a container (tmpfs from --tmpfs is not listed, as in Docker). */
export function mountViews(ctx: Pick<EngineContext, 'root'>, r: ContainerRecord): MountView[] {
  const store = new VolumeStore(ctx.root);
  return (r.hostConfig.mounts ?? [])
    .filter((m) => m.origin !== 'tmpfs')
    .map((m) => {
      const mode = m.mode ?? '';
      if (m.type === 'volume')
        return {
          Type: 'volume',
          Name: m.source,
          Source: store.dataDir(m.source),
          Destination: m.target,
          Driver: 'local',
          Mode: mode,
          RW: !m.readonly,
          Propagation: '',
        };
      return {
        Type: m.type,
        Source: m.source,
        Destination: m.target,
        Mode: mode,
        RW: !m.readonly,
        Propagation: m.type === 'bind' ? (m.propagation ?? 'rprivate') : '',
      };
    });
}

/** Removes volumes a create made before it failed. */
export function removeVolumes(ctx: EngineContext, names: string[]): void {
  const store = new VolumeStore(ctx.root);
  for (const n of names) {
    try {
      store.remove(n);
    } catch {
      // gone already
    }
  }
}

/**
 * Removes the anonymous volumes of a removed container (`rm -v`, `--rm`) that no other
 * container uses; named volumes stay, as in Docker.
 */
export function removeAnonymousVolumes(ctx: EngineContext, r: ContainerRecord): void {
  const store = new VolumeStore(ctx.root);
  for (const m of r.hostConfig.mounts ?? []) {
    if (m.type !== 'volume' || !m.anonymous) continue;
    if (volumeUsers(ctx, m.source).some((id) => id !== r.id)) continue;
    try {
      if (!store.read(m.source)) continue;
      store.remove(m.source);
      ctx.events.emit('volume', 'destroy', m.source, { driver: 'local' });
    } catch {
      // a damaged or busy volume stays for `volume rm` to report
    }
  }
}
