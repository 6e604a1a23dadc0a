// Docker's ways of asking for mounts, read into one shape (MountPoint) and checked before
// anything is made: `-v` strings (HostConfig.Binds), `--mount` (HostConfig.Mounts), `--tmpfs`
// (HostConfig.Tmpfs). Pure: nothing here touches the filesystem.
import { posix } from 'node:path';
import { EngineError } from './errors.js';

/** A mount of a container, as its record keeps it. */
export interface MountPoint {
  type: 'bind' | 'volume' | 'tmpfs';
  /** bind: an absolute host path; volume: the volume's name; tmpfs: ''. */
  source: string;
  /** An absolute path inside the container, cleaned (`..` cannot climb above `/`). */
  target: string;
  readonly: boolean;
  /** bind: Docker's propagation (rprivate when not given). */
  propagation?: string;
  /** bind: only the top mount, not the mounts beneath the source. */
  nonRecursive?: boolean;
  /** volume: not filled from the image's content at the target. */
  noCopy?: boolean;
  /** volume: made for this container (`-v CTR`, VOLUME): removed with it by `rm -v` and `--rm`. */
  anonymous?: boolean;
  /** volume: labels and local-driver options, used when the volume is made on first use. */
  volumeLabels?: Record<string, string>;
  volumeOptions?: Record<string, string>;
  /** tmpfs: the kernel's options (size=64m,mode=1777), flags included. */
  tmpfsOptions?: string[];
  /** Which request made it: -v (Binds), --mount, --tmpfs, the image's VOLUME, --volumes-from. */
  origin: 'bind' | 'mount' | 'tmpfs' | 'image' | 'from';
  /** The -v mode as given (`ro`, `rw,z`): Docker's inspect shows it. */
  mode?: string;
}

/** What `--mount` / HostConfig.Mounts asks for (Docker's Mount object, flattened). */
export interface MountRequest {
  type: 'bind' | 'volume' | 'tmpfs';
  source?: string;
  target: string;
  readonly?: boolean;
  propagation?: string;
  nonRecursive?: boolean;
  noCopy?: boolean;
  labels?: Record<string, string>;
  driver?: string;
  driverOptions?: Record<string, string>;
  tmpfsSize?: number;
  tmpfsMode?: number;
}

/** A local volume's name (Docker's rule): no slash, no `..`, nothing that leaves the store. */
export const VOLUME_NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;

export function checkVolumeName(name: string, what = 'volume name'): void {
  if (!VOLUME_NAME_RE.test(name))
    throw new EngineError(
      'InvalidArgument',
      `${what} "${name}" includes invalid characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path`,
    );
}

const PROPAGATIONS = ['private', 'rprivate', 'shared', 'rshared', 'slave', 'rslave'];
const CONSISTENCY = ['consistent', 'cached', 'delegated', 'default'];

const invalid = (flag: string, message: string) => new EngineError('InvalidArgument', `${flag}: ${message}`);

/** A container path: absolute, not `/`, cleaned. */
function target(flag: string, spec: string, path: string | undefined): string {
  if (!path) throw invalid(flag, `invalid mount config for '${spec}': a target is required`);
  if (!path.startsWith('/'))
    throw invalid(
      flag,
      `invalid mount config for '${spec}': invalid mount path: '${path}' mount path must be absolute`,
    );
  const clean = posix.normalize(path).replace(/(.)\/+$/, '$1');
  if (clean === '/') throw invalid(flag, `invalid specification '${spec}': destination can't be '/'`);
  if (path.includes('\0')) throw invalid(flag, `invalid mount path in '${spec}'`);
  return clean;
}

/**
 * One `-v` / HostConfig.Binds entry: `HOST:CTR[:MODE]` (a bind), `NAME:CTR[:MODE]` (a named
 * volume), `CTR` (an anonymous volume). MODE: ro|rw, a propagation, nocopy, z|Z (SELinux
 * labels: ignored, corral has no SELinux), consistent|cached|delegated (ignored).
 */
export function parseVolumeSpec(spec: string, flag = '--volume'): MountPoint {
  const parts = spec.split(':');
  if (!spec || parts.some((p) => p === '') || parts.length > 3)
    throw invalid(flag, `invalid volume specification: '${spec}'`);
  if (parts.length === 1)
    return {
      type: 'volume',
      source: '',
      target: target(flag, spec, parts[0]),
      readonly: false,
      anonymous: true,
      origin: 'bind',
    };
  const [source, dest, mode = ''] = parts;
  let readonly = false;
  let propagation: string | undefined;
  let noCopy = false;
  let seenRw = false;
  for (const m of mode ? mode.split(',') : []) {
    if (m === 'ro' || m === 'rw') {
      if (seenRw) throw invalid(flag, `invalid mode: ${mode}`);
      seenRw = true;
      readonly = m === 'ro';
    } else if (PROPAGATIONS.includes(m)) {
      if (propagation) throw invalid(flag, `invalid mode: ${mode}`);
      propagation = m;
    } else if (m === 'nocopy') noCopy = true;
    else if (m === 'z' || m === 'Z' || CONSISTENCY.includes(m)) {
      // z/Z relabel for SELinux and the consistency hints change nothing on this host.
    } else throw invalid(flag, `invalid mode: ${mode}`);
  }
  const dst = target(flag, spec, dest);
  if (source.startsWith('/')) {
    if (noCopy) throw invalid(flag, `invalid mode: ${mode} (nocopy is for volumes)`);
    return {
      type: 'bind',
      source: posix.normalize(source),
      target: dst,
      readonly,
      propagation: propagation ?? 'rprivate',
      origin: 'bind',
      mode,
    };
  }
  if (propagation) throw invalid(flag, `invalid mode: ${mode} (propagation is for bind mounts)`);
  checkVolumeName(source, `${flag} ${spec}:`);
  return { type: 'volume', source, target: dst, readonly, noCopy, origin: 'bind', mode };
}

const TRUE = ['', 'true', '1'];
const FALSE = ['false', '0'];

/** A `--mount` boolean: the key alone, true|1, false|0. */
function boolOf(flag: string, key: string, value: string | undefined): boolean {
  if (value === undefined || TRUE.includes(value)) return true;
  if (FALSE.includes(value)) return false;
  throw invalid(flag, `invalid value for ${key}: ${value} (true or false)`);
}

/** Splits a CSV field list (Docker reads --mount with a CSV reader: "a=b,c" quotes allowed). */
function csvFields(s: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '"') {
      if (quoted && s[i + 1] === '"') {
        cur += '"';
        i++;
      } else quoted = !quoted;
    } else if (c === ',' && !quoted) {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  out.push(cur);
  return out;
}

/** Bytes with Docker's units (64m, 1g, 512k, 100): RAMInBytes. */
function ramBytes(flag: string, v: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgtp]?)i?b?$/i.exec(v.trim());
  if (!m) throw invalid(flag, `invalid size: '${v}'`);
  const mult = { '': 1, k: 1 << 10, m: 1 << 20, g: 1 << 30, t: 2 ** 40, p: 2 ** 50 }[m[2].toLowerCase()]!;
  return Math.floor(Number(m[1]) * mult);
}

/** One `--mount` value (`type=bind,source=/a,target=/b,readonly`), Docker's keys. */
export function parseMountFlag(value: string, flag = '--mount'): MountRequest {
  const req: Partial<MountRequest> & { type: MountRequest['type'] } = { type: 'volume' };
  const kv = (field: string, what: string): [string, string] => {
    const i = field.indexOf('=');
    if (i <= 0) throw invalid(flag, `invalid field '${field}' must be a key=value pair (${what})`);
    return [field.slice(0, i), field.slice(i + 1)];
  };
  for (const field of csvFields(value)) {
    const i = field.indexOf('=');
    const key = (i < 0 ? field : field.slice(0, i)).trim().toLowerCase();
    const val = i < 0 ? undefined : field.slice(i + 1);
    const need = () => {
      if (val === undefined) throw invalid(flag, `invalid field '${field}' must be a key=value pair`);
      return val;
    };
    switch (key) {
      case 'type': {
        const t = need();
        if (t !== 'bind' && t !== 'volume' && t !== 'tmpfs')
          throw invalid(flag, `invalid mount type '${t}': bind, volume or tmpfs`);
        req.type = t;
        break;
      }
      case 'source':
      case 'src':
        req.source = need();
        break;
      case 'target':
      case 'dst':
      case 'destination':
        req.target = need();
        break;
      case 'readonly':
      case 'ro':
        req.readonly = boolOf(flag, key, val);
        break;
      case 'bind-propagation':
        if (!PROPAGATIONS.includes(need())) throw invalid(flag, `invalid bind-propagation: ${val}`);
        req.propagation = val;
        break;
      case 'bind-nonrecursive':
        req.nonRecursive = boolOf(flag, key, val);
        break;
      case 'volume-nocopy':
        req.noCopy = boolOf(flag, key, val);
        break;
      case 'volume-driver':
        req.driver = need();
        break;
      case 'volume-label': {
        const [k, v] = kv(need(), key);
        req.labels = { ...req.labels, [k]: v };
        break;
      }
      case 'volume-opt': {
        const [k, v] = kv(need(), key);
        req.driverOptions = { ...req.driverOptions, [k]: v };
        break;
      }
      case 'tmpfs-size':
        req.tmpfsSize = ramBytes(flag, need());
        break;
      case 'tmpfs-mode': {
        const m = need();
        if (!/^[0-7]{1,4}$/.test(m)) throw invalid(flag, `invalid tmpfs-mode: ${m} (octal, e.g. 1777)`);
        req.tmpfsMode = Number.parseInt(m, 8);
        break;
      }
      case 'consistency':
        need(); // a hint for Docker Desktop's file sharing: nothing to do here
        break;
      default:
        throw invalid(flag, `unknown key '${key}' in '${field}'`);
    }
  }
  if (!req.target) throw invalid(flag, `target is required in '${value}'`);
  return req as MountRequest;
}

/** Docker's --mount size as tmpfs's option: the largest unit that divides it (ConvertTmpfsOptions). */
function sizeOption(bytes: number): string {
  for (const [suffix, d] of [
    ['g', 1 << 30],
    ['m', 1 << 20],
    ['k', 1 << 10],
  ] as const)
    if (bytes % d === 0) return `size=${bytes / d}${suffix}`;
  return `size=${bytes}`;
}

/** A MountRequest checked against its type's rules (Docker's validateMountConfig). */
export function mountPointOf(req: MountRequest, flag = '--mount'): MountPoint {
  const spec = `type=${req.type},target=${req.target}`;
  const cfg = (msg: string) => invalid(flag, `invalid mount config for type "${req.type}": ${msg}`);
  const dst = target(flag, spec, req.target);
  const hasVolume = req.noCopy !== undefined || req.labels || req.driver || req.driverOptions;
  const hasBind = req.propagation !== undefined || req.nonRecursive !== undefined;
  const hasTmpfs = req.tmpfsSize !== undefined || req.tmpfsMode !== undefined;
  const readonly = req.readonly === true;
  if (req.type === 'bind') {
    if (hasVolume) throw cfg('field VolumeOptions must not be specified');
    if (hasTmpfs) throw cfg('field TmpfsOptions must not be specified');
    if (!req.source) throw cfg('field Source must not be empty');
    if (!req.source.startsWith('/'))
      throw cfg(`invalid mount path: '${req.source}' mount path must be absolute`);
    return {
      type: 'bind',
      source: posix.normalize(req.source),
      target: dst,
      readonly,
      propagation: req.propagation ?? 'rprivate',
      ...(req.nonRecursive ? { nonRecursive: true } : {}),
      origin: 'mount',
    };
  }
  if (req.type === 'volume') {
    if (hasBind) throw cfg('field BindOptions must not be specified');
    if (hasTmpfs) throw cfg('field TmpfsOptions must not be specified');
    if (req.driver && req.driver !== 'local') throw cfg(`volume driver ${req.driver}: only "local"`);
    if (req.source) checkVolumeName(req.source, `${flag} source`);
    return {
      type: 'volume',
      source: req.source ?? '',
      target: dst,
      readonly,
      ...(req.noCopy ? { noCopy: true } : {}),
      ...(req.source ? {} : { anonymous: true }),
      ...(req.labels ? { volumeLabels: req.labels } : {}),
      ...(req.driverOptions ? { volumeOptions: req.driverOptions } : {}),
      origin: 'mount',
    };
  }
  if (hasBind) throw cfg('field BindOptions must not be specified');
  if (hasVolume) throw cfg('field VolumeOptions must not be specified');
  if (req.source) throw cfg('field Source must not be specified');
  if (req.tmpfsSize !== undefined && (!Number.isSafeInteger(req.tmpfsSize) || req.tmpfsSize < 0))
    throw cfg(`invalid size: ${req.tmpfsSize}`);
  if (
    req.tmpfsMode !== undefined &&
    (!Number.isInteger(req.tmpfsMode) || req.tmpfsMode < 0 || req.tmpfsMode > 0o7777)
  )
    throw cfg(`invalid mode: ${req.tmpfsMode}`);
  const options = [
    ...(readonly ? ['ro'] : []),
    ...(req.tmpfsMode ? [`mode=${req.tmpfsMode.toString(8)}`] : []),
    ...(req.tmpfsSize ? [sizeOption(req.tmpfsSize)] : []),
  ];
  return { type: 'tmpfs', source: '', target: dst, readonly, tmpfsOptions: options, origin: 'mount' };
}

// tmpfs's own options and the mount flags that make sense on it.
const TMPFS_DATA = [
  'size',
  'mode',
  'uid',
  'gid',
  'nr_inodes',
  'nr_blocks',
  'mpol',
  'huge',
  'inode64',
  'noswap',
];
const TMPFS_FLAGS = [
  'ro',
  'rw',
  'exec',
  'noexec',
  'suid',
  'nosuid',
  'dev',
  'nodev',
  'sync',
  'async',
  'dirsync',
  'atime',
  'noatime',
  'diratime',
  'nodiratime',
  'relatime',
  'norelatime',
  'strictatime',
  'nostrictatime',
  'inode64',
  'noswap',
];

/** One `--tmpfs PATH[:OPTIONS]` (or a HostConfig.Tmpfs entry, `path` and `options` apart). */
export function parseTmpfs(path: string, options: string | undefined, flag = '--tmpfs'): MountPoint {
  const spec = options ? `${path}:${options}` : path;
  const dst = target(flag, spec, path);
  const opts = options ? options.split(',').filter(Boolean) : [];
  for (const o of opts) {
    const key = o.split('=')[0];
    if (o.includes('=') ? !TMPFS_DATA.includes(key) : !TMPFS_FLAGS.includes(o))
      throw invalid(flag, `invalid tmpfs option '${o}' in '${spec}'`);
    if (key === 'mode' && !/^mode=[0-7]{1,4}$/.test(o)) throw invalid(flag, `invalid tmpfs mode '${o}'`);
    if (key === 'size' && !/^size=\d+[kmgKMG%]?$/.test(o)) throw invalid(flag, `invalid tmpfs size '${o}'`);
  }
  return {
    type: 'tmpfs',
    source: '',
    target: dst,
    readonly: opts.includes('ro'),
    tmpfsOptions: opts,
    origin: 'tmpfs',
  };
}

/** `--tmpfs PATH[:OPTIONS]` as the CLI gives it. */
export function parseTmpfsFlag(value: string, flag = '--tmpfs'): MountPoint {
  const i = value.indexOf(':');
  return i < 0 ? parseTmpfs(value, undefined, flag) : parseTmpfs(value.slice(0, i), value.slice(i + 1), flag);
}

/** `--volumes-from NAME[:ro|rw]`: the container and the mode to force (none: each mount's own). */
export function parseVolumesFrom(
  value: string,
  flag = '--volumes-from',
): { container: string; mode?: 'ro' | 'rw' } {
  const [container, mode, ...rest] = value.split(':');
  if (!container || rest.length || (mode !== undefined && mode !== 'ro' && mode !== 'rw'))
    throw invalid(flag, `invalid value '${value}': CONTAINER[:ro|rw]`);
  return mode ? { container, mode } : { container };
}
