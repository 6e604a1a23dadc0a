// The settings of `docker run` beyond the program and its limits: ulimits, labels, extra
// groups, host devices, /dev/shm's size, namespaced sysctls, the OOM killer, the json-file
// log's rotation. Parsed from Docker's flag strings here (for the CLI), checked at create for
// both front-ends (the daemon hands over Docker's HostConfig values), and turned into the OCI
// spec at each start (applyRunSettings).
import { readFileSync, statSync } from 'node:fs';
import { posix } from 'node:path';
import { parseBytes } from '@corral/cgroups';
import type { OciProcess, OciSpec } from '@corral/runtime';
import { prlimit, RLIMIT, type RlimitName } from '@corral/sys';
import { EngineError } from './errors.js';
import type { ContainerRecord } from './records.js';

/** One `--ulimit NAME=SOFT[:HARD]` (Docker's names; -1 is unlimited). */
export interface Ulimit {
  name: string;
  soft: number;
  hard: number;
}

/** One `--device HOST[:CTR[:rwm]]`. */
export interface DeviceMapping {
  pathOnHost: string;
  pathInContainer: string;
  cgroupPermissions: string;
}

/** `--log-driver json-file` and its `--log-opt`s (Docker's LogConfig). */
export interface LogConfig {
  type: 'json-file';
  config: Record<string, string>;
}

/** What create takes beyond the program (see CreateContainerOptions). */
export interface RunSettings {
  /** `--label`, `--label-file`: merged over the image's labels. */
  labels?: Record<string, string>;
  ulimits?: Ulimit[];
  /** `--group-add`: group names (looked up in the container's /etc/group) or gids. */
  groupAdd?: string[];
  devices?: DeviceMapping[];
  /** `--shm-size` in bytes (default 64 MiB). */
  shmSize?: number;
  sysctls?: Record<string, string>;
  oomKillDisable?: boolean;
  /** `--oom-score-adj`, -1000..1000. */
  oomScoreAdj?: number;
  logConfig?: { type?: string; config?: Record<string, string> };
}

/** The parts of a record these settings become (all optional: older records have none). */
export interface RunRecordParts {
  labels: Record<string, string>;
  hostConfig: {
    ulimits?: Ulimit[];
    groupAdd?: string[];
    devices?: DeviceMapping[];
    shmSize?: number;
    sysctls?: Record<string, string>;
    oomScoreAdj?: number;
    logConfig?: LogConfig;
  };
}

const bad = (message: string) => new EngineError('InvalidArgument', message);

/** Docker's ulimit names and the kernel's resources. */
const ULIMIT_NAMES: Record<string, RlimitName> = {
  as: 'AS',
  core: 'CORE',
  cpu: 'CPU',
  data: 'DATA',
  fsize: 'FSIZE',
  locks: 'LOCKS',
  memlock: 'MEMLOCK',
  msgqueue: 'MSGQUEUE',
  nice: 'NICE',
  nofile: 'NOFILE',
  nproc: 'NPROC',
  rss: 'RSS',
  rtprio: 'RTPRIO',
  rttime: 'RTTIME',
  sigpending: 'SIGPENDING',
  stack: 'STACK',
};

const limitValue = (s: string, flag: string): number => {
  if (!/^-?\d+$/.test(s) || !Number.isSafeInteger(Number(s)) || Number(s) < -1)
    throw bad(`invalid ${flag}: ${s} is not a whole number (or -1 for unlimited)`);
  return Number(s);
};

/** `--ulimit nofile=1024:2048` (one number sets both). */
export function parseUlimit(spec: string): Ulimit {
  const m = /^([^=]+)=(-?\d+)(?::(-?\d+))?$/.exec(spec.trim());
  if (!m) throw bad(`invalid --ulimit ${spec}: use NAME=SOFT[:HARD], such as nofile=1024:2048`);
  const soft = limitValue(m[2], `--ulimit ${spec}`);
  return { name: m[1], soft, hard: m[3] === undefined ? soft : limitValue(m[3], `--ulimit ${spec}`) };
}

/** True when this process holds CAP_SYS_RESOURCE (it may raise hard limits). */
function holdsSysResource(): boolean {
  const hex = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '0';
  return ((BigInt(`0x${hex}`) >> 24n) & 1n) === 1n;
}

const asLimit = (v: number) => (v === -1 ? Number.POSITIVE_INFINITY : v);
const show = (v: number) => (v === Number.POSITIVE_INFINITY ? 'unlimited' : String(v));

/**
 * Checks ulimits before anything is made: a known name, soft at most hard, and a hard limit
 * this process can give (the container inherits ours; raising it needs CAP_SYS_RESOURCE).
 * A name given twice keeps the last, as Docker does.
 */
export function checkUlimits(ulimits: readonly Ulimit[]): Ulimit[] {
  const byName = new Map<string, Ulimit>();
  const mayRaise = ulimits.length > 0 && holdsSysResource();
  for (const u of ulimits) {
    const what = `--ulimit ${u.name}=${u.soft}:${u.hard}`;
    const resource = ULIMIT_NAMES[u.name];
    if (!resource)
      throw bad(
        `invalid ${what}: unknown ulimit type ${u.name} (known: ${Object.keys(ULIMIT_NAMES).join(', ')})`,
      );
    for (const v of [u.soft, u.hard])
      if (!Number.isSafeInteger(v) || v < -1)
        throw bad(`invalid ${what}: limits are whole numbers, -1 for unlimited`);
    const soft = asLimit(u.soft);
    const hard = asLimit(u.hard);
    if (soft > hard) throw bad(`invalid ${what}: the soft limit must not exceed the hard limit`);
    const own = prlimit(0, RLIMIT[resource]);
    if (hard > own.hard && !mayRaise)
      throw bad(
        `${what}: the hard limit is above corral's own (${show(own.hard)}), and raising it needs CAP_SYS_RESOURCE, which corral does not hold here; use at most ${u.name}=${show(own.hard)}`,
      );
    byName.set(u.name, { name: u.name, soft: u.soft, hard: u.hard });
  }
  return [...byName.values()];
}

/** `--device /dev/fuse`, `/dev/sda:/dev/xvda:r`. */
export function parseDevice(spec: string): DeviceMapping {
  const parts = spec.split(':');
  const [host, second, third] = parts;
  if (parts.length > 3 || !host) throw bad(`invalid --device ${spec}: use HOST[:CONTAINER][:rwm]`);
  const isPerm = (s: string | undefined) => s !== undefined && /^[rwm]+$/.test(s);
  if (parts.length === 2 && isPerm(second))
    return { pathOnHost: host, pathInContainer: host, cgroupPermissions: second! };
  return { pathOnHost: host, pathInContainer: second || host, cgroupPermissions: third ?? 'rwm' };
}

/** A host device's type and numbers, or an error naming the flag. */
export function hostDevice(path: string): { type: 'c' | 'b'; major: number; minor: number; mode: number } {
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(path);
  } catch (e) {
    throw bad(
      `--device ${path}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such device on the host' : (e as Error).message}`,
    );
  }
  if (!st.isCharacterDevice() && !st.isBlockDevice())
    throw bad(`--device ${path}: not a character or block device (folders of devices are not supported)`);
  const rdev = Number(st.rdev);
  // The kernel's encoding of dev_t (glibc's gnu_dev_major/minor).
  const major = ((rdev >>> 8) & 0xfff) | (Math.floor(rdev / 2 ** 32) & ~0xfff);
  const minor = (rdev & 0xff) | ((rdev >>> 12) & ~0xff);
  return { type: st.isCharacterDevice() ? 'c' : 'b', major, minor, mode: Number(st.mode) & 0o777 };
}

function checkDevices(devices: readonly DeviceMapping[]): DeviceMapping[] {
  return devices.map((d) => {
    const flag = `--device ${d.pathOnHost}`;
    if (!posix.isAbsolute(d.pathOnHost)) throw bad(`${flag}: the host path must be absolute`);
    const ctr = posix.normalize(d.pathInContainer || d.pathOnHost);
    if (!posix.isAbsolute(ctr) || ctr === '/' || ctr === '/dev')
      throw bad(`${flag}: the container path ${d.pathInContainer} must be an absolute file path`);
    const perms = d.cgroupPermissions || 'rwm';
    if (!/^[rwm]{1,3}$/.test(perms)) throw bad(`${flag}: invalid permissions ${perms} (a mix of r, w and m)`);
    hostDevice(d.pathOnHost);
    return { pathOnHost: d.pathOnHost, pathInContainer: ctr, cgroupPermissions: perms };
  });
}

/** Sysctls of the IPC namespace (runc's list), beside fs.mqueue.*. */
const IPC_SYSCTLS = new Set([
  'kernel.msgmax',
  'kernel.msgmnb',
  'kernel.msgmni',
  'kernel.sem',
  'kernel.shmall',
  'kernel.shmmax',
  'kernel.shmmni',
  'kernel.shm_rmid_forced',
]);

/** `--shm-size 128m` in bytes. */
export function parseShmSize(v: string): number {
  try {
    return parseBytes(v, 'shm-size');
  } catch {
    throw bad(`invalid --shm-size ${v}: a size such as 128m`);
  }
}

/** `--sysctl K=V` entries as a map. */
export function parseSysctls(list: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const s of list) {
    const i = s.indexOf('=');
    if (i <= 0) throw bad(`invalid --sysctl ${s}: use NAME=VALUE`);
    out[s.slice(0, i).trim()] = s.slice(i + 1);
  }
  return out;
}

/**
 * Only sysctls that a namespace of the container's own isolates: IPC ones always (every
 * container has its own IPC namespace), net.* only with a network namespace of its own.
 */
function checkSysctls(sysctls: Record<string, string>, networkMode: string): Record<string, string> {
  for (const [key, value] of Object.entries(sysctls)) {
    const flag = `--sysctl ${key}=${value}`;
    if (!/^[a-z0-9_]+(\.[a-zA-Z0-9_-]+)+$/.test(key)) throw bad(`invalid ${flag}: not a sysctl name`);
    if (/[\n\0]/.test(value)) throw bad(`invalid ${flag}: the value holds a newline`);
    if (IPC_SYSCTLS.has(key) || key.startsWith('fs.mqueue.')) continue;
    if (key.startsWith('net.')) {
      if (networkMode === 'host')
        throw bad(`${flag}: net.* sysctls are not allowed with --network host: they would change the host`);
      if (networkMode.startsWith('container:'))
        throw bad(
          `${flag}: net.* sysctls are not allowed with --network container: the namespace is another container's`,
        );
      continue;
    }
    throw bad(
      `${flag}: not a namespaced sysctl, it would change the host (allowed: kernel.msg*, kernel.sem, kernel.shm*, fs.mqueue.*, and net.* with a network of the container's own)`,
    );
  }
  return { ...sysctls };
}

/** `--log-opt max-size=10m`, `max-file=3` as a map. */
export function parseLogOpts(list: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const s of list) {
    const i = s.indexOf('=');
    if (i <= 0) throw bad(`invalid --log-opt ${s}: use KEY=VALUE`);
    out[s.slice(0, i)] = s.slice(i + 1);
  }
  return out;
}

/** The json-file log's rotation in bytes and files (none when max-size is not set). */
export function logRotation(r: ContainerRecord): { maxSize: number; maxFile: number } | null {
  const c = r.hostConfig.logConfig?.config ?? {};
  if (!c['max-size'] || c['max-size'] === '-1') return null;
  return { maxSize: parseBytes(c['max-size'], 'max-size'), maxFile: Number(c['max-file'] ?? 1) };
}

function checkLogConfig(l: NonNullable<RunSettings['logConfig']>): LogConfig | undefined {
  if (l.type && l.type !== 'json-file')
    throw bad(`--log-driver ${l.type} is not supported by corral (json-file only)`);
  const config = { ...(l.config ?? {}) };
  for (const [k, v] of Object.entries(config)) {
    if (k === 'max-size') {
      if (v === '-1') continue;
      let n: number;
      try {
        n = parseBytes(v, 'max-size');
      } catch {
        throw bad(`invalid --log-opt max-size=${v}: a size such as 10m`);
      }
      if (n <= 0) throw bad(`invalid --log-opt max-size=${v}: must be at least 1 byte`);
    } else if (k === 'max-file') {
      if (!/^\d+$/.test(v) || Number(v) < 1)
        throw bad(`invalid --log-opt max-file=${v}: a whole number of at least 1`);
    } else throw bad(`--log-opt ${k} is not supported by corral's json-file log (max-size, max-file)`);
  }
  if (config['max-file'] && Number(config['max-file']) > 1 && !config['max-size'])
    throw bad('--log-opt max-file needs max-size: without a size the log is never rotated');
  return Object.keys(config).length || l.type ? { type: 'json-file', config } : undefined;
}

/**
 * Docker's env-file and label-file format: one `K=V` a line (the value as written, quotes
 * and all), `#` comments and blank lines skipped; a bare `K` takes `lookup(K)` (the caller's
 * environment for --env-file) and is left out when that has none.
 */
export function readKeyValueFile(
  path: string,
  flag: string,
  lookup?: (key: string) => string | undefined,
): string[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw bad(`${flag} ${path}: ${code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  const out: string[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trimStart();
    if (!line || line.startsWith('#')) return;
    const eq = line.indexOf('=');
    const key = eq < 0 ? line.trimEnd() : line.slice(0, eq);
    if (!key) throw bad(`${flag} ${path}:${i + 1}: no variable name on line '${raw}'`);
    if (/\s/.test(key)) throw bad(`${flag} ${path}:${i + 1}: variable '${key}' contains whitespaces`);
    if (eq >= 0) out.push(line);
    else if (!lookup) out.push(key);
    else {
      const v = lookup(key);
      if (v !== undefined) out.push(`${key}=${v}`);
    }
  });
  return out;
}

/** `--label K=V` / `K` entries as a map (a bare key has an empty value). */
export function parseLabels(list: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const l of list) {
    const i = l.indexOf('=');
    const key = i < 0 ? l : l.slice(0, i);
    if (!key) throw bad(`invalid --label ${l}: no key`);
    out[key] = i < 0 ? '' : l.slice(i + 1);
  }
  return out;
}

/** `--filter label=K` / `label=K=V` (given as `K` / `K=V`): every one must match. */
export function labelMatcher(filters: readonly string[]): (labels: Record<string, string>) => boolean {
  const wanted = filters.map((f) => {
    const i = f.indexOf('=');
    return i < 0 ? { key: f, value: undefined } : { key: f.slice(0, i), value: f.slice(i + 1) };
  });
  return (labels) =>
    wanted.every((w) => Object.hasOwn(labels, w.key) && (w.value === undefined || labels[w.key] === w.value));
}

/** The oom_score_adj this process has (a lower one needs CAP_SYS_RESOURCE). */
function ownOomScoreAdj(): number {
  try {
    return Number(readFileSync('/proc/self/oom_score_adj', 'utf8').trim());
  } catch {
    return 0;
  }
}

/**
 * Checks the settings and returns what the record keeps. Everything that can be wrong is
 * found here, before anything is made.
 */
export function checkRunSettings(s: RunSettings, networkMode: string): RunRecordParts {
  const hostConfig: RunRecordParts['hostConfig'] = {};
  if (s.ulimits?.length) hostConfig.ulimits = checkUlimits(s.ulimits);
  if (s.groupAdd?.length) {
    for (const g of s.groupAdd)
      if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]*\$?$/.test(g))
        throw bad(`invalid --group-add ${g}: a group name or id`);
    hostConfig.groupAdd = [...s.groupAdd];
  }
  if (s.devices?.length) hostConfig.devices = checkDevices(s.devices);
  if (s.shmSize !== undefined && s.shmSize !== 0) {
    if (!Number.isSafeInteger(s.shmSize) || s.shmSize < 0)
      throw bad(`invalid --shm-size ${s.shmSize}: a size in bytes, such as 128m`);
    hostConfig.shmSize = s.shmSize;
  }
  if (s.sysctls && Object.keys(s.sysctls).length) hostConfig.sysctls = checkSysctls(s.sysctls, networkMode);
  if (s.oomScoreAdj !== undefined && s.oomScoreAdj !== 0) {
    const v = s.oomScoreAdj;
    if (!Number.isInteger(v) || v < -1000 || v > 1000)
      throw bad(`invalid --oom-score-adj ${v}: the range is -1000 to 1000`);
    const own = ownOomScoreAdj();
    if (v < own && !holdsSysResource())
      throw bad(
        `--oom-score-adj ${v}: lower than corral's own (${own}), which needs CAP_SYS_RESOURCE, which corral does not hold here`,
      );
    hostConfig.oomScoreAdj = v;
  }
  if (s.logConfig) {
    const l = checkLogConfig(s.logConfig);
    if (l) hostConfig.logConfig = l;
  }
  return { labels: { ...(s.labels ?? {}) }, hostConfig };
}

// RLIM_INFINITY as JSON can carry it (2^64 as a double): the runtime reads anything this large as it.
const RLIM_INFINITY = 2 ** 64 - 1;

/** The OCI rlimits of a container's --ulimit settings (its program's and every exec's), if any. */
export function rlimitsOf(r: ContainerRecord): OciProcess['rlimits'] {
  const u = r.hostConfig.ulimits;
  if (!u?.length) return undefined;
  return u.map((x) => ({
    type: `RLIMIT_${ULIMIT_NAMES[x.name]}`,
    soft: x.soft === -1 ? RLIM_INFINITY : x.soft,
    hard: x.hard === -1 ? RLIM_INFINITY : x.hard,
  }));
}

/** Looks up `--group-add` names in the container's group entries (`name:x:gid:...`). */
export function groupIds(groupAdd: readonly string[], groups: readonly string[][]): number[] {
  return groupAdd.map((g) => {
    if (/^\d+$/.test(g)) return Number(g);
    const entry = groups.find((f) => f[0] === g);
    if (!entry || !/^\d+$/.test(entry[2] ?? ''))
      throw new EngineError('CannotStart', `--group-add ${g}: no such group in the container's /etc/group`);
    return Number(entry[2]);
  });
}

/**
 * Adds the settings of a record to the OCI spec made for a start: rlimits, oomScoreAdj,
 * sysctls, /dev/shm's size, extra groups (looked up through `groups`, the container's own
 * /etc/group), devices with their cgroup rules (the runtime makes the nodes inside the root).
 */
export function applyRunSettings(spec: OciSpec, r: ContainerRecord, groups: () => string[][]): void {
  const h = r.hostConfig;
  const rlimits = rlimitsOf(r);
  if (rlimits) spec.process.rlimits = rlimits;
  if (h.oomScoreAdj !== undefined) spec.process.oomScoreAdj = h.oomScoreAdj;
  if (h.sysctls && spec.linux) spec.linux.sysctl = { ...(spec.linux.sysctl ?? {}), ...h.sysctls };
  if (h.shmSize)
    spec.mounts = (spec.mounts ?? []).map((m) =>
      m.destination === '/dev/shm'
        ? {
            ...m,
            options: [
              ...(m.options ?? []).filter((o) => !o.startsWith('size=')),
              `size=${Math.ceil(h.shmSize! / 1024)}k`,
            ],
          }
        : m,
    );
  if (h.groupAdd?.length) {
    const user = spec.process.user;
    user.additionalGids = [...new Set([...(user.additionalGids ?? []), ...groupIds(h.groupAdd, groups())])];
  }
  if (h.devices?.length && spec.linux) {
    const rules = [...(spec.linux.resources?.devices ?? [])]; // a copy: the defaults are shared
    const allowAll = rules.some((x) => x.allow && x.type === undefined && x.major === undefined);
    for (const d of h.devices) {
      let dev: ReturnType<typeof hostDevice>;
      try {
        dev = hostDevice(d.pathOnHost);
      } catch (e) {
        throw new EngineError('CannotStart', (e as Error).message);
      }
      spec.linux.devices = [
        ...(spec.linux.devices ?? []),
        {
          type: dev.type,
          path: d.pathInContainer,
          major: dev.major,
          minor: dev.minor,
          fileMode: dev.mode,
          uid: 0,
          gid: 0,
        },
      ];
      if (!allowAll)
        rules.push({
          allow: true,
          type: dev.type,
          major: dev.major,
          minor: dev.minor,
          access: d.cgroupPermissions,
        });
    }
    spec.linux.resources = { ...(spec.linux.resources ?? {}), devices: rules };
  }
}
