// Docker's mount fields of a create body (HostConfig.Binds, Mounts, Tmpfs, VolumesFrom,
// VolumeDriver and Config.Volumes) as the engine's options, and back for inspect. A field the
// engine does not do and that would change the container is a 400 naming it.
import type { ContainerRecord, MountCreateOptions, MountRequest } from '@corral/engine';
import { bad } from './http.js';

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const given = (v: unknown) =>
  v !== undefined &&
  v !== null &&
  v !== false &&
  v !== '' &&
  v !== 0 &&
  !(isObject(v) && !Object.keys(v).length);

function strings(v: unknown, field: string): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string'))
    throw bad(`${field} must be a list of strings`);
  return v as string[];
}

function stringMap(v: unknown, field: string): Record<string, string> | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isObject(v) || Object.values(v).some((x) => typeof x !== 'string'))
    throw bad(`${field} must be an object of strings`);
  return v as Record<string, string>;
}

/** Only the keys listed may be set (to a non-empty value) in `o`; others are a 400 naming them. */
function only(o: Json, field: string, keys: string[]): void {
  for (const [k, v] of Object.entries(o))
    if (!keys.includes(k) && given(v)) throw bad(`${field}.${k} is not supported by corral`);
}

/** One HostConfig.Mounts entry (Docker's Mount object) as the engine's request. */
function mountRequest(m: unknown, i: number): MountRequest {
  const f = `HostConfig.Mounts[${i}]`;
  if (!isObject(m)) throw bad(`${f} must be an object`);
  only(m, f, [
    'Type',
    'Source',
    'Target',
    'ReadOnly',
    'Consistency',
    'BindOptions',
    'VolumeOptions',
    'TmpfsOptions',
  ]);
  const type = m.Type;
  if (type !== 'bind' && type !== 'volume' && type !== 'tmpfs')
    throw bad(`${f}.Type ${String(type)} is not supported by corral (bind, volume, tmpfs)`);
  if (typeof m.Target !== 'string') throw bad(`${f}.Target must be a string`);
  const req: MountRequest = { type, target: m.Target };
  if (m.Source !== undefined && m.Source !== '') {
    if (typeof m.Source !== 'string') throw bad(`${f}.Source must be a string`);
    req.source = m.Source;
  }
  if (m.ReadOnly === true) req.readonly = true;
  const b = m.BindOptions;
  if (isObject(b)) {
    only(b, `${f}.BindOptions`, ['Propagation', 'NonRecursive']);
    if (typeof b.Propagation === 'string' && b.Propagation) req.propagation = b.Propagation;
    if (b.NonRecursive === true) req.nonRecursive = true;
  }
  const v = m.VolumeOptions;
  if (isObject(v)) {
    only(v, `${f}.VolumeOptions`, ['NoCopy', 'Labels', 'DriverConfig']);
    if (v.NoCopy === true) req.noCopy = true;
    req.labels = stringMap(v.Labels, `${f}.VolumeOptions.Labels`);
    const dc = v.DriverConfig;
    if (isObject(dc)) {
      if (typeof dc.Name === 'string' && dc.Name) req.driver = dc.Name;
      req.driverOptions = stringMap(dc.Options, `${f}.VolumeOptions.DriverConfig.Options`);
    }
  }
  const t = m.TmpfsOptions;
  if (isObject(t)) {
    only(t, `${f}.TmpfsOptions`, ['SizeBytes', 'Mode']);
    if (typeof t.SizeBytes === 'number' && t.SizeBytes) req.tmpfsSize = t.SizeBytes;
    if (typeof t.Mode === 'number' && t.Mode) req.tmpfsMode = t.Mode;
  }
  for (const k of Object.keys(req) as (keyof MountRequest)[]) if (req[k] === undefined) delete req[k];
  return req;
}

/** The mount fields of a create body as the engine's options. */
export function mountOptionsOf(body: Json, host: Json): MountCreateOptions {
  const driver = host.VolumeDriver;
  if (given(driver) && driver !== 'local')
    throw bad(`HostConfig.VolumeDriver ${String(driver)} is not supported by corral (local)`);
  const mounts = host.Mounts;
  if (mounts !== undefined && mounts !== null && !Array.isArray(mounts))
    throw bad('HostConfig.Mounts must be a list');
  const tmpfs = host.Tmpfs;
  const volumes = body.Volumes;
  if (volumes !== undefined && volumes !== null && !isObject(volumes)) throw bad('Volumes must be an object');
  return {
    volumes: strings(host.Binds, 'HostConfig.Binds'),
    mounts: ((mounts as unknown[] | null | undefined) ?? []).map(mountRequest),
    tmpfs: stringMap(tmpfs, 'HostConfig.Tmpfs') ?? {},
    volumesFrom: strings(host.VolumesFrom, 'HostConfig.VolumesFrom'),
    anonymousVolumes: Object.keys((volumes as Json | null | undefined) ?? {}),
  };
}

/** Docker's HostConfig.Binds, Tmpfs and Config.Volumes of a container, from its mounts. */
export function mountFieldsJson(r: ContainerRecord): {
  Binds: string[] | null;
  Tmpfs: Record<string, string>;
  Volumes: Json | null;
} {
  const mounts = r.hostConfig.mounts ?? [];
  const binds = mounts
    .filter((m) => m.origin === 'bind' && !m.anonymous)
    .map((m) => `${m.source}:${m.target}${m.mode ? `:${m.mode}` : ''}`);
  const tmpfs = Object.fromEntries(
    mounts.filter((m) => m.origin === 'tmpfs').map((m) => [m.target, (m.tmpfsOptions ?? []).join(',')]),
  );
  const anon = mounts.filter((m) => m.anonymous && m.origin !== 'mount');
  return {
    Binds: binds.length ? binds : null,
    Tmpfs: tmpfs,
    Volumes: anon.length ? Object.fromEntries(anon.map((m) => [m.target, {}])) : null,
  };
}
