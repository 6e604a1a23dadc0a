import type { OciLinuxResources } from '@corral/cgroups';
import { CLONE } from '@corral/sys';
import type { DeviceRule } from './devices.js';
import type { OciSeccomp } from './seccomp.js';
/** The parts of the OCI runtime spec (config.json) that corral's runtime implements. */
export interface OciSpec {
  ociVersion: string;
  process: OciProcess;
  root: { path: string; readonly?: boolean };
  hostname?: string;
  domainname?: string;
  mounts?: OciMount[];
  hooks?: OciHooks;
  annotations?: Record<string, string>;
  linux?: OciLinux;
}

/** One hook: a program on the host (or, for createContainer and startContainer, in the container). */
export interface OciHook {
  path: string;
  args?: string[];
  env?: string[];
  /** Seconds before the hook is killed and counts as failed. */
  timeout?: number;
}

/** The lifecycle hooks, by the point where they run (runtime spec "POSIX-platform Hooks"). */
export interface OciHooks {
  /** Deprecated alias of createRuntime, run just before it. */
  prestart?: OciHook[];
  createRuntime?: OciHook[];
  createContainer?: OciHook[];
  startContainer?: OciHook[];
  poststart?: OciHook[];
  poststop?: OciHook[];
}

export const HOOK_NAMES = [
  'prestart',
  'createRuntime',
  'createContainer',
  'startContainer',
  'poststart',
  'poststop',
] as const satisfies readonly (keyof OciHooks)[];

/** linux.resources: the cgroup limits, plus the device rules of the devices controller. */
export interface OciResources extends Omit<OciLinuxResources, 'devices'> {
  devices?: DeviceRule[];
}

export interface OciProcess {
  terminal?: boolean;
  consoleSize?: { height: number; width: number };
  user: { uid: number; gid: number; umask?: number; additionalGids?: number[] };
  args: string[];
  env?: string[];
  cwd: string;
  rlimits?: { type: string; soft: number; hard: number }[];
  noNewPrivileges?: boolean;
  /** Capability names (CAP_CHOWN, ...) per set; absent: the sets are left as they are. */
  capabilities?: {
    bounding?: string[];
    effective?: string[];
    inheritable?: string[];
    permitted?: string[];
    ambient?: string[];
  };
  oomScoreAdj?: number;
}

export interface OciMount {
  destination: string;
  type?: string;
  source?: string;
  options?: string[];
}

export type NamespaceType = 'pid' | 'network' | 'mount' | 'ipc' | 'uts' | 'user' | 'cgroup' | 'time';

/**
 * The namespaces an init unshares or joins itself, and an exec joins: the OCI type, the
 * entry under /proc/PID/ns, and the flag of unshare/setns. (pid is switched by the caller.)
 */
export const JOINABLE_NAMESPACES: readonly { type: NamespaceType; link: string; flag: number }[] = [
  { type: 'mount', link: 'mnt', flag: CLONE.NEWNS },
  { type: 'uts', link: 'uts', flag: CLONE.NEWUTS },
  { type: 'ipc', link: 'ipc', flag: CLONE.NEWIPC },
  { type: 'network', link: 'net', flag: CLONE.NEWNET },
  { type: 'cgroup', link: 'cgroup', flag: CLONE.NEWCGROUP },
];

export interface OciLinux {
  namespaces?: { type: NamespaceType; path?: string }[];
  devices?: OciDevice[];
  cgroupsPath?: string;
  resources?: OciResources;
  rootfsPropagation?:
    | 'private'
    | 'rprivate'
    | 'slave'
    | 'rslave'
    | 'shared'
    | 'rshared'
    | 'unbindable'
    | 'runbindable';
  maskedPaths?: string[];
  readonlyPaths?: string[];
  sysctl?: Record<string, string>;
  seccomp?: OciSeccomp;
  personality?: { domain: 'LINUX' | 'LINUX32'; flags?: string[] };
  intelRdt?: Record<string, unknown>;
}

export interface OciDevice {
  type: 'c' | 'b' | 'u' | 'p';
  path: string;
  major?: number;
  minor?: number;
  fileMode?: number;
  uid?: number;
  gid?: number;
}

/** Annotation that makes corral's init PID 1, with the program as its child (Docker's --init). */
export const INIT_ANNOTATION = 'run.corral.init';

/** /dev and its usual filesystems, as runc's sample spec and Docker give every container. */
export const DEFAULT_DEV_MOUNTS: readonly OciMount[] = [
  {
    destination: '/dev',
    type: 'tmpfs',
    source: 'tmpfs',
    options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'],
  },
  {
    destination: '/dev/pts',
    type: 'devpts',
    source: 'devpts',
    options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'],
  },
  {
    destination: '/dev/shm',
    type: 'tmpfs',
    source: 'shm',
    options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'],
  },
  {
    destination: '/dev/mqueue',
    type: 'mqueue',
    source: 'mqueue',
    options: ['nosuid', 'noexec', 'nodev'],
  },
];

/** The devices every container gets (runtime spec: "Default Devices"). */
export const DEFAULT_DEVICES: OciDevice[] = [
  { type: 'c', path: '/dev/null', major: 1, minor: 3, fileMode: 0o666 },
  { type: 'c', path: '/dev/zero', major: 1, minor: 5, fileMode: 0o666 },
  { type: 'c', path: '/dev/full', major: 1, minor: 7, fileMode: 0o666 },
  { type: 'c', path: '/dev/random', major: 1, minor: 8, fileMode: 0o666 },
  { type: 'c', path: '/dev/urandom', major: 1, minor: 9, fileMode: 0o666 },
  { type: 'c', path: '/dev/tty', major: 5, minor: 0, fileMode: 0o666 },
];

/** Checks the parts of a spec that the runtime relies on, naming the field that is wrong. */
export function validateSpec(spec: unknown): asserts spec is OciSpec {
  const s = spec as Partial<OciSpec> | null;
  const fail = (what: string) => {
    throw new Error(`invalid OCI config: ${what}`);
  };
  if (!s || typeof s !== 'object') fail('not a JSON object');
  if (typeof s!.ociVersion !== 'string') fail('ociVersion must be a string');
  if (!s!.root || typeof s!.root.path !== 'string' || !s!.root.path) fail('root.path is required');
  const p = s!.process;
  if (!p || typeof p !== 'object') fail('process is required');
  if (!Array.isArray(p!.args) || p!.args.length === 0 || !p!.args.every((a) => typeof a === 'string'))
    fail('process.args must be a non-empty list of strings');
  if (typeof p!.cwd !== 'string' || !p!.cwd.startsWith('/')) fail('process.cwd must be an absolute path');
  if (!p!.user || !Number.isInteger(p!.user.uid) || !Number.isInteger(p!.user.gid))
    fail('process.user.uid and gid must be integers');
  for (const m of s!.mounts ?? [])
    if (typeof m.destination !== 'string' || !m.destination.startsWith('/'))
      fail(`mount destination ${m.destination} must be absolute`);
  for (const ns of s!.linux?.namespaces ?? []) {
    if (!['pid', 'network', 'mount', 'ipc', 'uts', 'user', 'cgroup', 'time'].includes(ns.type))
      fail(`unknown namespace type ${ns.type}`);
    if (ns.type === 'user')
      fail('user namespaces are not supported: corral runs containers as root, without a user namespace');
  }
}
