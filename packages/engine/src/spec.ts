import { readFileSync } from 'node:fs';
import { type CgroupLimits, limitsToOci } from '@corral/cgroups';
import {
  DEFAULT_DEV_MOUNTS,
  DEFAULT_DEVICE_RULES,
  INIT_ANNOTATION,
  type OciProcess,
  type OciSeccomp,
  type OciSpec,
} from '@corral/runtime';
import { CAP, close, openRoot, parseCapability, readFileInRoot } from '@corral/sys';
import { EngineError } from './errors.js';
import type { ContainerRecord } from './records.js';
import { applyRunSettings, groupIds } from './run-options.js';
import { resolveSeccompProfile } from './seccomp.js';
import { DEFAULT_SECCOMP_PROFILE } from './seccomp-default.js';

export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

// Docker's defaults: kernel interfaces a container must not read or write.
const MASKED_PATHS = [
  '/proc/asound',
  '/proc/acpi',
  '/proc/interrupts',
  '/proc/kcore',
  '/proc/keys',
  '/proc/latency_stats',
  '/proc/timer_list',
  '/proc/timer_stats',
  '/proc/sched_debug',
  '/proc/scsi',
  '/sys/firmware',
  '/sys/devices/virtual/powercap',
];
const READONLY_PATHS = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

/** passwd and group files larger than this are refused (glibc has no limit; 4 MiB is plenty). */
const MAX_ETC_FILE = 4 << 20;

/**
 * The entries of a passwd- or group-style file of the image, split into fields; none when
 * absent. The file is looked up inside the container's root (its symlinks cannot lead to the
 * host's files) and must be a regular file of at most 4 MiB.
 */
function entries(rootfd: number, file: string): string[][] {
  let content: Buffer | null;
  try {
    content = readFileInRoot(rootfd, file, MAX_ETC_FILE);
  } catch (e) {
    throw new EngineError('CannotStart', `cannot read the image's ${file}: ${(e as Error).message}`);
  }
  return (content?.toString('utf8') ?? '')
    .split('\n')
    .filter((line) => line && !line.startsWith('#'))
    .map((line) => line.split(':'));
}

const isId = (s: string) => /^\d+$/.test(s);

/** A resolved user: ids for setresuid/setresgid and the groups Docker gives it. */
export interface ResolvedUser {
  uid: number;
  gid: number;
  /** The primary group and every group of /etc/group that lists the user (Docker's rule). */
  additionalGids: number[];
}

/**
 * Docker's `--user` forms: `uid`, `uid:gid`, `name`, `name:group`, looked up in the
 * container's own /etc/passwd and /etc/group. A uid without an entry runs with gid 0.
 */
export function resolveUser(user: string, rootfs: string): ResolvedUser {
  const [u = '', g] = (user || '0').split(':');
  const rootfd = openRoot(rootfs);
  let passwd: string[][];
  let groups: string[][];
  try {
    passwd = entries(rootfd, '/etc/passwd');
    groups = entries(rootfd, '/etc/group');
  } finally {
    close(rootfd);
  }
  const entry = isId(u) ? passwd.find((f) => f[2] === u) : passwd.find((f) => f[0] === u);
  if (!entry && !isId(u))
    throw new EngineError('CannotStart', `unable to find user ${u}: no matching entries in passwd file`);
  const uid = Number(entry?.[2] ?? u);
  let gid = Number(entry?.[3] ?? 0);
  if (g !== undefined) {
    const group = isId(g) ? null : groups.find((f) => f[0] === g);
    if (!isId(g) && !group)
      throw new EngineError('CannotStart', `unable to find group ${g}: no matching entries in group file`);
    gid = Number(group?.[2] ?? g);
  }
  if (!Number.isInteger(uid) || !Number.isInteger(gid))
    throw new EngineError(
      'CannotStart',
      `invalid user ${user}: the image's passwd or group file has a malformed entry`,
    );
  const member = entry
    ? groups.filter((f) => (f[3] ?? '').split(',').includes(entry[0])).map((f) => Number(f[2]))
    : [];
  return { uid, gid, additionalGids: [...new Set([gid, ...member])].filter(Number.isInteger) };
}

/** The container's environment: Docker's defaults under the user's. */
export function containerEnv(r: ContainerRecord): string[] {
  const env = new Map<string, string>([
    ['PATH', DEFAULT_PATH],
    ['HOSTNAME', r.config.hostname],
  ]);
  for (const e of r.config.env) {
    const i = e.indexOf('=');
    if (i > 0) env.set(e.slice(0, i), e.slice(i + 1));
  }
  if (!env.has('HOME')) env.set('HOME', '/root');
  if (r.config.tty && !env.has('TERM')) env.set('TERM', 'xterm');
  return [...env].map(([k, v]) => `${k}=${v}`);
}

/** The OCI runtime config for a container whose root is mounted at `rootfs`. */
export function buildSpec(
  r: ContainerRecord,
  rootfs: string,
  /** The network namespace to join (null: the host's, --network host). */
  netns: string | null,
  consoleSize?: { height: number; width: number },
): OciSpec {
  const { uid, gid, additionalGids } = resolveUser(r.config.user, rootfs);
  const privileged = r.hostConfig.privileged;
  const capabilities = capabilitiesFor(r, uid);
  const seccomp = seccompProfile(r, capabilities?.bounding ?? []);
  const spec: OciSpec = {
    ociVersion: '1.2.0',
    process: {
      terminal: r.config.tty,
      ...(consoleSize ? { consoleSize } : {}),
      user: { uid, gid, additionalGids },
      capabilities,
      noNewPrivileges: r.hostConfig.noNewPrivileges,
      args: r.config.cmd,
      env: containerEnv(r),
      cwd: r.config.workdir || '/',
    },
    root: { path: rootfs, readonly: r.hostConfig.readonlyRootfs },
    hostname: r.config.hostname,
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
      ...DEFAULT_DEV_MOUNTS,
      {
        destination: '/sys',
        type: 'sysfs',
        source: 'sysfs',
        options: ['nosuid', 'noexec', 'nodev', privileged ? 'rw' : 'ro'],
      },
    ],
    annotations: r.config.init ? { [INIT_ANNOTATION]: 'true' } : {},
    linux: {
      namespaces: [
        { type: 'pid' },
        { type: 'mount' },
        { type: 'uts' },
        { type: 'ipc' },
        ...(netns ? [{ type: 'network' as const, path: netns }] : []),
      ],
      cgroupsPath: cgroupPathOf(r),
      resources: {
        ...limitsToOci(limitsOf(r)),
        devices: privileged ? [{ allow: true, access: 'rwm' }] : DEFAULT_DEVICE_RULES,
      } as Record<string, unknown>,
      ...(seccomp ? { seccomp } : {}),
      maskedPaths: privileged ? [] : MASKED_PATHS,
      readonlyPaths: privileged ? [] : READONLY_PATHS,
    },
  };
  applyRunSettings(spec, r, () => imageGroups(rootfs));
  return spec;
}

/** The user of an exec: resolved as for the container's program, with its --group-add groups (Docker's rule). */
export function execUser(r: ContainerRecord, user: string, rootfs: string): ResolvedUser {
  const u = resolveUser(user, rootfs);
  if (!r.hostConfig.groupAdd?.length) return u;
  const extra = groupIds(r.hostConfig.groupAdd, imageGroups(rootfs));
  return { ...u, additionalGids: [...new Set([...u.additionalGids, ...extra])] };
}

/** The entries of the container's /etc/group (read inside its root). */
function imageGroups(rootfs: string): string[][] {
  const rootfd = openRoot(rootfs);
  try {
    return entries(rootfd, '/etc/group');
  } finally {
    close(rootfd);
  }
}

/**
 * Where a container's cgroup goes: `corral-ID` beneath the runtime's own cgroup, or beneath
 * `--cgroup-parent` (relative to our own cgroup, or absolute).
 */
export function cgroupPathOf(r: ContainerRecord): string {
  const parent = r.hostConfig.resources.cgroupParent;
  const leaf = `corral-${r.id}`;
  return parent ? `${parent.replace(/\/+$/, '')}/${leaf}` : leaf;
}

/** The cgroup limits of a container (its resources without the placement). */
export function limitsOf(r: ContainerRecord): CgroupLimits {
  const { cgroupParent: _, ...limits } = r.hostConfig.resources;
  return limits;
}

/** Docker's default capabilities: what a container's root keeps unless told otherwise. */
export const DEFAULT_CAPABILITIES = [
  'CHOWN',
  'DAC_OVERRIDE',
  'FSETID',
  'FOWNER',
  'MKNOD',
  'NET_RAW',
  'SETGID',
  'SETUID',
  'SETFCAP',
  'SETPCAP',
  'NET_BIND_SERVICE',
  'SYS_CHROOT',
  'KILL',
  'AUDIT_WRITE',
];

/**
 * The capability names a container gets: Docker's defaults plus --cap-add minus --cap-drop
 * (`ALL` stands for every capability), or all of them when privileged. Unknown names are an
 * error before anything starts.
 */
export function capabilityNames(hostConfig: ContainerRecord['hostConfig']): string[] {
  const all = Object.keys(CAP);
  const norm = (n: string) => {
    const key = n.toUpperCase().replace(/^CAP_/, '');
    if (key !== 'ALL') {
      try {
        parseCapability(key);
      } catch {
        throw new EngineError('InvalidArgument', `unknown capability: "${n}"`);
      }
    }
    return key;
  };
  const add = hostConfig.capAdd.map(norm);
  const drop = hostConfig.capDrop.map(norm);
  // Only what corral itself holds can be given (here, for one, not CAP_SYS_RESOURCE).
  const held = heldCapabilities();
  if (hostConfig.privileged || add.includes('ALL')) {
    for (const c of all) if (!held.has(c)) all.splice(all.indexOf(c), 1);
  }
  for (const c of add) {
    if (c !== 'ALL' && !held.has(c))
      throw new EngineError(
        'Forbidden',
        `capability ${c} is not available: corral itself does not hold it on this host`,
      );
  }
  if (hostConfig.privileged) return all.map((c) => `CAP_${c}`);
  let caps = new Set(add.includes('ALL') ? all : [...DEFAULT_CAPABILITIES, ...add]);
  if (drop.includes('ALL')) caps = new Set(add.filter((c) => c !== 'ALL'));
  for (const c of drop) caps.delete(c);
  return [...caps].map((c) => `CAP_${c}`);
}

/** The OCI capability sets: the names bound the container; only root starts with them in effect. */
export function capabilitiesFor(r: ContainerRecord, uid: number): OciProcess['capabilities'] {
  const names = capabilityNames(r.hostConfig);
  return {
    bounding: names,
    effective: uid === 0 ? names : [],
    permitted: uid === 0 ? names : [],
    inheritable: [],
  };
}

/** The capabilities in this process's bounding set, by name. */
function heldCapabilities(): Set<string> {
  const hex = /^CapBnd:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '0';
  const mask = BigInt(`0x${hex}`);
  return new Set(
    Object.entries(CAP)
      .filter(([, n]) => (mask >> BigInt(n)) & 1n)
      .map(([name]) => name),
  );
}

/**
 * The container's seccomp profile: one given with `--security-opt seccomp=FILE` (resolved at
 * create), none when unconfined or privileged, else Docker's default resolved against the
 * container's bounding set (`caps`).
 */
export function seccompProfile(r: ContainerRecord, caps: readonly string[]): OciSeccomp | undefined {
  if (r.hostConfig.seccomp === 'custom') return r.hostConfig.seccompProfile;
  if (r.hostConfig.privileged || r.hostConfig.seccomp === 'unconfined') return undefined;
  return resolveSeccompProfile(DEFAULT_SECCOMP_PROFILE, { caps });
}
