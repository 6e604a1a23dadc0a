// Volumes of the `local` driver, as Docker keeps them: ROOT/volumes/NAME/volume.json (the
// record) and ROOT/volumes/NAME/_data (the content). A volume is made whole in a temp folder
// and renamed into place, and taken away by a rename before its content is removed: a reader
// sees one complete or none. A name is checked before any path is made of it.
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { privateDir } from '@corral/image';
import { parseMountOptions } from '@corral/runtime';
import { isMountPoint, MNT, mount, umount2 } from '@corral/sys';
import type { EngineContext } from './context.js';
import { EngineError } from './errors.js';
import { checkVolumeName } from './mount-parse.js';

/** What the store keeps of a volume. */
export interface VolumeRecord {
  name: string;
  driver: 'local';
  createdAt: string;
  labels: Record<string, string>;
  /** The local driver's options: type, device, o (Docker's `-o`). */
  options: Record<string, string>;
  /** Made for one container (`-v CTR`, an image's VOLUME) rather than by name. */
  anonymous: boolean;
}

/** Docker's volume object (volume inspect, GET /volumes). */
export interface VolumeView {
  Name: string;
  Driver: 'local';
  Mountpoint: string;
  CreatedAt: string;
  Labels: Record<string, string>;
  Scope: 'local';
  Options: Record<string, string>;
}

/** What `volume create` takes. */
export interface VolumeCreateRequest {
  /** A name (a random one when absent, as Docker). */
  name?: string;
  driver?: string;
  labels?: Record<string, string>;
  options?: Record<string, string>;
}

const LOCAL_TYPES = ['tmpfs', 'bind', 'none'];

/** The local driver's `-o` options, checked (Docker's: type, device, o; size for tmpfs too). */
function checkOptions(options: Record<string, string>): void {
  for (const k of Object.keys(options))
    if (!['type', 'device', 'o', 'size'].includes(k))
      throw new EngineError('InvalidArgument', `invalid option key: "${k}" (type, device, o)`);
  const type = options.type;
  if (type === undefined) {
    if (options.device || options.o)
      throw new EngineError('InvalidArgument', 'missing "type" option: tmpfs, or none with o=bind');
    return;
  }
  if (!LOCAL_TYPES.includes(type))
    throw new EngineError(
      'InvalidArgument',
      `local volume type "${type}" is not supported by corral: tmpfs, bind or none (o=bind)`,
    );
  if (type !== 'tmpfs') {
    const o = (options.o ?? '').split(',');
    if (type === 'none' && !o.includes('bind') && !o.includes('rbind'))
      throw new EngineError('InvalidArgument', 'local volume type "none" needs o=bind and device=HOST_PATH');
    if (!options.device?.startsWith('/'))
      throw new EngineError('InvalidArgument', 'a bind volume needs device=ABSOLUTE_HOST_PATH');
  }
}

export class VolumeStore {
  readonly dir: string;

  constructor(root: string) {
    this.dir = join(root, 'volumes');
  }

  path(name: string): string {
    checkVolumeName(name);
    return join(this.dir, name);
  }

  /** The folder the volume's content is in (its host mount point for a tmpfs volume). */
  dataDir(name: string): string {
    return join(this.path(name), '_data');
  }

  /** The record of `name`, null when there is none; a damaged record is an error naming its file. */
  read(name: string): VolumeRecord | null {
    const file = join(this.path(name), 'volume.json');
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      if (hasCode(e, 'ENOENT', 'ENOTDIR')) return null;
      throw e;
    }
    try {
      const r = JSON.parse(text) as VolumeRecord;
      if (r.name !== name || r.driver !== 'local') throw new Error('not a volume record of this name');
      return r;
    } catch (e) {
      throw new EngineError(
        'Unavailable',
        `volume ${name}: its record ${file} is damaged (${(e as Error).message}): remove that folder to drop the volume`,
      );
    }
  }

  names(): string[] {
    if (!existsSync(this.dir)) return [];
    return readdirSync(this.dir).filter(
      (n) => !n.startsWith('.') && existsSync(join(this.dir, n, 'volume.json')),
    );
  }

  /** Makes a volume, or returns the one of that name (Docker's create is idempotent). */
  create(req: VolumeCreateRequest & { anonymous?: boolean }): { record: VolumeRecord; created: boolean } {
    if (req.driver && req.driver !== 'local')
      throw new EngineError('NotFound', `plugin "${req.driver}" not found: corral has the local driver only`);
    const name = req.name || randomBytes(32).toString('hex');
    checkVolumeName(name);
    const options = req.options ?? {};
    checkOptions(options);
    const existing = this.read(name);
    if (existing) return { record: existing, created: false };
    privateDir(this.dir);
    const record: VolumeRecord = {
      name,
      driver: 'local',
      createdAt: new Date().toISOString(),
      labels: req.labels ?? {},
      options,
      anonymous: req.anonymous ?? false,
    };
    const tmp = join(this.dir, `.new-${randomBytes(6).toString('hex')}`);
    mkdirSync(join(tmp, '_data'), { recursive: true, mode: 0o755 });
    writeDurable(join(tmp, 'volume.json'), JSON.stringify(record, null, 2));
    try {
      renameSync(tmp, this.path(name));
    } catch (e) {
      rmSync(tmp, { recursive: true, force: true });
      if (!hasCode(e, 'EEXIST', 'ENOTEMPTY')) throw e;
      const other = this.read(name); // made meanwhile by another process: that one stands
      if (other) return { record: other, created: false };
      throw e;
    }
    return { record, created: true };
  }

  /** Takes a volume away: unmounted (a tmpfs one), renamed aside, then its content removed. */
  remove(name: string): void {
    const dir = this.path(name);
    unmountData(join(dir, '_data'));
    const aside = join(this.dir, `.rm-${randomBytes(6).toString('hex')}`);
    renameSync(dir, aside);
    rmSync(aside, { recursive: true, force: true });
  }

  /**
   * Where a container's mount of the volume comes from: the device of a bind volume, else its
   * _data folder (a tmpfs volume's tmpfs is mounted there on the host on first use and stays
   * until the volume is removed, so every container that uses it sees the same files).
   */
  source(r: VolumeRecord): string {
    const data = this.dataDir(r.name);
    const { type, device, o } = r.options;
    if (type === 'bind' || type === 'none') {
      if (!device || !existsSync(device) || !statSync(device).isDirectory())
        throw new EngineError(
          'CannotStart',
          `volume ${r.name}: its device ${device} is not a folder on this host`,
        );
      return device;
    }
    if (type === 'tmpfs' && !isMountPoint(data)) {
      const parsed = parseMountOptions((o ?? '').split(',').filter(Boolean));
      const data2 = [parsed.data, r.options.size ? `size=${r.options.size}` : ''].filter(Boolean).join(',');
      try {
        mount(device || 'tmpfs', data, 'tmpfs', parsed.flags, data2 || null);
      } catch (e) {
        throw new EngineError('CannotStart', `volume ${r.name}: mounting its tmpfs: ${(e as Error).message}`);
      }
    }
    return data;
  }
}

/** True when a Node fs error has one of these codes. */
const hasCode = (e: unknown, ...codes: string[]) => codes.includes((e as NodeJS.ErrnoException)?.code ?? '');

function writeDurable(path: string, text: string): void {
  const fd = openSync(path, 'w', 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function unmountData(path: string): void {
  while (isMountPoint(path)) {
    try {
      umount2(path, MNT.DETACH);
    } catch (e) {
      throw new EngineError('Unavailable', `unmounting ${path}: ${(e as Error).message}`);
    }
  }
}

/** The containers whose mounts use volume `name` (their ids). */
export function volumeUsers(ctx: EngineContext, name: string): string[] {
  const out: string[] = [];
  for (const id of ctx.records.ids()) {
    let r: ReturnType<EngineContext['records']['read']>;
    try {
      r = ctx.records.read(id);
    } catch {
      continue; // a damaged record: `system check` reports it
    }
    if (r?.hostConfig.mounts?.some((m) => m.type === 'volume' && m.source === name)) out.push(id);
  }
  return out;
}

export function volumeView(store: VolumeStore, r: VolumeRecord): VolumeView {
  return {
    Name: r.name,
    Driver: 'local',
    Mountpoint: store.dataDir(r.name),
    CreatedAt: r.createdAt,
    Labels: r.labels,
    Scope: 'local',
    Options: r.options,
  };
}

/** Filters of `volume ls` / `volume prune` (Docker's): name, label, dangling, driver. */
export type VolumeFilters = Record<string, string[]>;

function matches(ctx: EngineContext, r: VolumeRecord, filters: VolumeFilters, inUse: () => boolean): boolean {
  for (const [k, values] of Object.entries(filters)) {
    if (!values.length) continue;
    const any = (test: (v: string) => boolean) => values.some(test);
    if (k === 'name' && !any((v) => r.name.includes(v))) return false;
    if (k === 'driver' && !any((v) => v === 'local')) return false;
    if (k === 'dangling' && !any((v) => (v === 'true' || v === '1') === !inUse())) return false;
    if (k === 'all') continue;
    if (k === 'label') {
      const ok = values.every((v) => {
        const i = v.indexOf('=');
        return i < 0 ? v in r.labels : r.labels[v.slice(0, i)] === v.slice(i + 1);
      });
      if (!ok) return false;
    }
    if (!['name', 'driver', 'dangling', 'label', 'all'].includes(k))
      throw new EngineError('InvalidArgument', `invalid filter '${k}'`);
  }
  void ctx;
  return true;
}

/** Docker's volume commands (`volume create|ls|inspect|rm|prune`), for both front-ends. */
export class EngineVolumes {
  readonly #ctx: EngineContext;
  readonly #store: VolumeStore;

  constructor(ctx: EngineContext) {
    this.#ctx = ctx;
    this.#store = new VolumeStore(ctx.root);
  }

  create(req: VolumeCreateRequest = {}): VolumeView {
    const { record, created } = this.#store.create(req);
    if (created) this.#ctx.events.emit('volume', 'create', record.name, { driver: 'local' });
    return volumeView(this.#store, record);
  }

  list(filters: VolumeFilters = {}): VolumeView[] {
    const out: VolumeView[] = [];
    for (const name of this.#store.names()) {
      const r = this.#store.read(name);
      if (r && matches(this.#ctx, r, filters, () => volumeUsers(this.#ctx, name).length > 0))
        out.push(volumeView(this.#store, r));
    }
    return out.sort((a, b) => a.Name.localeCompare(b.Name));
  }

  inspect(name: string): VolumeView {
    const r = this.#store.read(name);
    if (!r) throw new EngineError('NotFound', `get ${name}: no such volume`);
    return volumeView(this.#store, r);
  }

  /**
   * Removes a volume: refused while a container (running or not) uses it. `force` (Docker's
   * `-f`) makes a missing volume no error; a volume in use is still refused.
   */
  remove(name: string, options: { force?: boolean } = {}): void {
    const r = this.#store.read(name);
    if (!r) {
      if (options.force) return;
      throw new EngineError('NotFound', `get ${name}: no such volume`);
    }
    const users = volumeUsers(this.#ctx, name);
    if (users.length)
      throw new EngineError('Conflict', `remove ${name}: volume is in use - [${users.join(', ')}]`);
    this.#store.remove(name);
    this.#ctx.events.emit('volume', 'destroy', name, { driver: 'local' });
  }

  /**
   * Removes unused volumes: anonymous ones only, or every unused one with `all` (Docker's
   * `prune -a`, API filter all=true). Returns the names and the bytes freed.
   */
  prune(options: { all?: boolean; filters?: VolumeFilters } = {}): {
    removed: string[];
    spaceReclaimed: number;
  } {
    const filters = options.filters ?? {};
    const all = options.all || (filters.all ?? []).some((v) => v === 'true' || v === '1');
    const removed: string[] = [];
    let space = 0;
    for (const name of this.#store.names()) {
      const r = this.#store.read(name);
      if (!r || (!all && !r.anonymous)) continue;
      if (!matches(this.#ctx, r, filters, () => true)) continue;
      if (volumeUsers(this.#ctx, name).length) continue;
      space += treeSize(this.#store.dataDir(name));
      this.#store.remove(name);
      this.#ctx.events.emit('volume', 'destroy', name, { driver: 'local' });
      removed.push(name);
    }
    return { removed, spaceReclaimed: space };
  }
}

function treeSize(dir: string): number {
  let total = 0;
  try {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) total += treeSize(p);
      else if (e.isFile()) total += statSync(p).size;
    }
  } catch {
    // gone meanwhile
  }
  return total;
}
