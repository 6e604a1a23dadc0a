// `docker ps`'s rows: one function for the Engine and for the listing that `corral ps` opens
// without it (listing.ts), which differ only in how a record is read (the Engine brings a
// record whose keeper died up to date first; the listing runs only when none needs it).
import type { PortMapping } from '@corral/network';
import type { EngineContext } from './context.js';
import { type ContainerFilters, containerMatcher, filtersImplyAll } from './housekeeping.js';
import { type MountView, mountViews } from './mounts.js';
import { portsOf } from './network.js';
import type { ContainerRecord, RecordStore } from './records.js';
import { describeStatus } from './status.js';

/** A container's summary for `ps`. */
export interface ContainerSummary {
  id: string;
  name: string;
  image: string;
  command: string;
  created: string;
  status: string;
  state: ContainerRecord['state']['status'];
  exitCode: number | null;
  /** Ports published while it runs. */
  ports: PortMapping[];
  labels: Record<string, string>;
  /** Its binds, volumes and --mount tmpfs mounts (Docker's Mounts). */
  mounts: MountView[];
}

export interface ListOptions {
  all?: boolean;
  filters?: ContainerFilters;
}

/**
 * docker ps with Docker's filters (id, name, status, exited, ancestor, label, before, since);
 * a status or exited filter includes containers that are not running, as `-a` does. `get`
 * finds a container by id or name (a before/since filter's), `fresh` brings a stored record up
 * to date (the Engine's reconcile); each record is read once, by its id.
 */
export function listContainers(
  ctx: Pick<EngineContext, 'root'> & { records: RecordStore },
  read: { get: (ref: string) => ContainerRecord; fresh: (r: ContainerRecord) => ContainerRecord },
  options: ListOptions = {},
): ContainerSummary[] {
  const filters = options.filters ?? {};
  const match = containerMatcher(read.get, filters);
  const all = options.all || filtersImplyAll(filters);
  const out: ContainerSummary[] = [];
  for (const id of ctx.records.ids()) {
    const stored = ctx.records.read(id);
    if (!stored) continue; // removed meanwhile
    let r: ContainerRecord;
    try {
      r = read.fresh(stored);
    } catch {
      continue; // removed meanwhile
    }
    // Docker's ps lists a container in its restart back-off with the running ones.
    if (!all && r.state.status !== 'running' && !r.state.restarting) continue;
    if (!match(r)) continue;
    out.push({
      id: r.id,
      name: r.name,
      image: r.image,
      command: r.config.cmd.join(' '),
      created: r.created,
      status: describeStatus(r),
      state: r.state.status,
      exitCode: r.state.exitCode,
      ports: r.state.status === 'running' ? portsOf(ctx, r) : [],
      labels: r.config.labels ?? {},
      mounts: mountViews(ctx, r),
    });
  }
  // Newest first. The times are all toISOString's: compared by code unit (as localeCompare
  // orders them, without its first call's set-up of a collator, ~8 ms of a `ps`).
  return out.sort((a, b) => (a.created < b.created ? 1 : a.created > b.created ? -1 : 0));
}
