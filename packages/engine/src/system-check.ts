import {
  existsSync,
  mkdirSync,
  readdirSync,
  readlinkSync,
  renameSync,
  rmSync,
  statSync,
  unlinkSync,
} from 'node:fs';
import { join } from 'node:path';
import { openCgroup } from '@corral/cgroups';
import type { Finding } from '@corral/image';
import { procStartTime, readMountInfo } from '@corral/sys';
import type { EngineContext } from './context.js';
import { reconcile } from './lifecycle.js';
import { type ContainerRecord, runtimeStatus } from './records.js';
import { cgroupPathOf } from './spec.js';

export type { Finding };

/** What `system check` found (and, with repair, did). */
export interface SystemCheckResult {
  findings: Finding[];
  /** Unreferenced blobs and layers (not damage): `image prune` frees them. */
  reclaimable: { blobs: number; layers: number; bytes: number };
  /** True when nothing is left to fix (every finding repaired, or none). */
  clean: boolean;
}

const ID_RE = /^[0-9a-f]{64}$/;
/** A container folder without a record younger than this may be a create in progress. */
const CREATE_GRACE_MS = 30_000;

/**
 * fsck for a data root: the image store (see the image package's fsck.ts), then every
 * container against what the kernel holds for it: a record that says running with no process,
 * mounts, cgroups, runtime state and init processes of containers that do not run, folders
 * and names without a record, damaged records, temp files of dead writers. With `repair`,
 * what can be fixed without losing data is: dead containers are marked exited, orphan mounts
 * unmounted, orphan cgroups and runtime state removed, damaged records moved with their
 * container's folder to ROOT/quarantine/. Containers whose run, start or watcher is alive are
 * left alone. Meant for a quiet root (as fsck for an unmounted disk): a command that starts
 * while it repairs may see its container's half-made parts taken away.
 */
export async function systemCheck(
  ctx: EngineContext,
  options: { repair?: boolean } = {},
): Promise<SystemCheckResult> {
  const repair = options.repair === true;
  const image = await ctx.store.fsck({ repair });
  const findings = [...image.findings];
  const add = async (area: string, problem: string, fix?: () => string | Promise<string>) => {
    const f: Finding = { area, problem };
    if (repair && fix) {
      try {
        f.repaired = await fix();
      } catch (e) {
        f.problem += `; the repair failed: ${(e as Error).message}`;
      }
    }
    findings.push(f);
  };
  const mounts = () => readMountInfo().map((m) => m.mountPoint);
  const mountsUnder = (dir: string) => mounts().filter((m) => m === dir || m.startsWith(`${dir}/`));
  const unmountAll = (dir: string) => {
    // Deepest first: a mount stacked inside another goes before it.
    for (const m of mountsUnder(dir).sort((a, b) => b.length - a.length)) ctx.snapshots().cleanup(m);
  };
  // Every container the runtime has a folder for: with its state.json, or half created (a
  // create SIGKILLed before it wrote one, which delete takes away too).
  const runtimeRoot = join(ctx.root, 'runtime');
  const runtimeIds = new Set(
    existsSync(runtimeRoot) ? readdirSync(runtimeRoot).filter((d) => ID_RE.test(d)) : [],
  );
  const known = new Set<string>();

  for (const id of readdirSync(ctx.records.containers)) {
    const dir = ctx.records.dir(id);
    if (!ID_RE.test(id)) continue;
    known.add(id);
    // Record temp files of writers that died between write and rename.
    for (const f of ctx.records.staleTemps(id))
      await add('temp', `${f} left by a process that is gone`, () => {
        rmSync(f, { force: true });
        return 'removed';
      });
    let r: ContainerRecord | null;
    try {
      r = ctx.records.read(id);
    } catch (e) {
      await add('container', (e as Error).message, async () => {
        if (runtimeRunning(ctx, id)) throw new Error('its program still runs: stop it first');
        unmountAll(dir);
        if (runtimeIds.has(id)) await ctx.runtime.delete(id, { force: true });
        const to = join(ctx.root, 'quarantine', `container-${id}`);
        mkdirSync(join(ctx.root, 'quarantine'), { recursive: true, mode: 0o700 });
        renameSync(dir, to);
        releaseNamesOf(ctx, id);
        return `its folder (with its files) moved to ${to}`;
      });
      continue;
    }
    if (!r) {
      if (Date.now() - statSync(dir).mtimeMs < CREATE_GRACE_MS) continue; // a create in progress
      await add('container', `container folder ${dir} has no record (a create that was killed)`, async () => {
        unmountAll(dir);
        if (runtimeIds.has(id)) await ctx.runtime.delete(id, { force: true });
        await removeCgroup(cgroupPathOf({ id, hostConfig: { resources: {} } } as ContainerRecord));
        rmSync(dir, { recursive: true, force: true });
        releaseNamesOf(ctx, id);
        return 'its mounts, runtime state and folder removed';
      });
      continue;
    }
    const rec = r;
    if (busy(rec)) continue; // a run, start or watcher is at work on it
    if (rec.state.status === 'running') {
      if (runtimeRunning(ctx, id)) continue;
      await add(
        'container',
        `container ${rec.name} (${id.slice(0, 12)}) is recorded as running, but its process is gone`,
        () => {
          reconcile(ctx, rec);
          return 'marked exited';
        },
      );
    }
    // Not running (or just marked so): nothing of a run may be left.
    const left = mountsUnder(dir);
    if (left.length)
      await add(
        'mount',
        `container ${rec.name} does not run but ${left.join(', ')} ${left.length > 1 ? 'are' : 'is'} mounted`,
        () => {
          unmountAll(dir);
          return 'unmounted';
        },
      );
    if (runtimeIds.has(id))
      await add(
        'runtime',
        `container ${rec.name} does not run but the runtime still holds its state (and maybe an init waiting to start)`,
        async () => {
          await ctx.runtime.delete(id, { force: true });
          return 'runtime state deleted (its processes killed, its cgroup removed)';
        },
      );
    if (cgroupLeft(cgroupPathOf(rec)))
      await add(
        'cgroup',
        `container ${rec.name} does not run but its cgroup ${cgroupPathOf(rec)} is there`,
        async () => {
          await removeCgroup(cgroupPathOf(rec));
          return 'removed';
        },
      );
  }

  // Runtime state of containers without a folder (removed while their run died).
  for (const id of runtimeIds) {
    if (known.has(id) || !ID_RE.test(id)) continue;
    await add(
      'runtime',
      `the runtime holds state for ${id.slice(0, 12)}, which has no container`,
      async () => {
        await ctx.runtime.delete(id, { force: true });
        return 'runtime state deleted (its processes killed, its cgroup removed)';
      },
    );
  }

  // Names that point at no container.
  for (const name of readdirSync(ctx.records.names)) {
    let target = '';
    try {
      target = readlinkSync(join(ctx.records.names, name));
    } catch {}
    if (existsSync(ctx.records.dir(target))) continue;
    await add(
      'container',
      `name ${name} points at ${target.slice(0, 12) || 'nothing'}, which is no container`,
      () => {
        unlinkSync(join(ctx.records.names, name));
        return 'name released';
      },
    );
  }

  // Union mounts under the root that belong to no container (network namespaces and
  // volumes' own mounts, a tmpfs volume's, are theirs).
  const others = ['network', 'volumes'].map((d) => `${join(ctx.root, d)}/`);
  for (const m of mounts()) {
    if (!m.startsWith(`${ctx.root}/`) || others.some((o) => m.startsWith(o))) continue;
    const rel = m.slice(ctx.root.length + 1).split('/');
    if (rel[0] === 'containers' && rel[1] && known.has(rel[1])) continue;
    // A tmpfs volume (local driver, type=tmpfs) stays mounted at its _data until it is removed.
    if (
      rel[0] === 'volumes' &&
      rel[2] === '_data' &&
      existsSync(join(ctx.root, 'volumes', rel[1], 'volume.json'))
    )
      continue;
    await add('mount', `${m} is mounted but belongs to no container`, () => {
      ctx.snapshots().cleanup(m);
      return 'unmounted';
    });
  }

  return {
    findings,
    reclaimable: image.reclaimable,
    clean: findings.every((f) => f.repaired !== undefined),
  };
}

/**
 * Is a live process at work on the container: its attached run, its network setup, or its
 * keeper (named with its start time from the first step of a launch; a watcher of an older
 * version by its PID alone, while the container runs)?
 */
function busy(r: ContainerRecord): boolean {
  const alive = (o?: { pid: number; startTime: number }) => !!o && procStartTime(o.pid) === o.startTime;
  if (alive(r.state.owner) || alive(r.state.networkOwner)) return true;
  const w = r.state.watcherPid;
  if (!w) return false;
  const start = procStartTime(w);
  if (start === null) return false;
  const keeperStart = r.state.keeperStartTime;
  return keeperStart !== undefined ? start === keeperStart : r.state.status === 'running';
}

function runtimeRunning(ctx: EngineContext, id: string): boolean {
  return runtimeStatus(ctx.runtime, id) !== 'exited';
}

/** Is any folder of a container's cgroup there (a create killed half way makes only some)? */
function cgroupLeft(path: string): boolean {
  return Object.values(openCgroup({ path }).dirs).some((d) => existsSync(d));
}

/** Removes a container's cgroup (placed beneath ours), killing what is left in it. */
async function removeCgroup(path: string): Promise<void> {
  if (!cgroupLeft(path)) return;
  const cgroup = openCgroup({ path });
  let pids: number[] = [];
  try {
    pids = cgroup.processes();
  } catch {
    // only some of its folders are there
  }
  if (pids.length) await cgroup.killAll('SIGKILL');
  await cgroup.remove();
}

function releaseNamesOf(ctx: EngineContext, id: string): void {
  for (const name of readdirSync(ctx.records.names)) {
    try {
      if (readlinkSync(join(ctx.records.names, name)) === id) unlinkSync(join(ctx.records.names, name));
    } catch {}
  }
}
