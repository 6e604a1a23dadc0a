// What of a valid spec this runtime can honour on this host. A field of the runtime spec that
// corral does not implement, or that the host cannot do, is an error that names it: never
// silently ignored. (Properties the spec does not define are ignored, as it asks.)
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { detectCgroupMode } from '@corral/cgroups';
import { RuntimeError } from './errors.js';
import { HOOK_NAMES, type OciHook, type OciSpec, validateSpec } from './spec.js';

export class UnsupportedError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
    this.name = 'UnsupportedError';
  }
}

const present = (v: unknown) =>
  v !== undefined &&
  v !== null &&
  v !== '' &&
  !(Array.isArray(v) && v.length === 0) &&
  !(typeof v === 'object' && !Array.isArray(v) && Object.keys(v as object).length === 0);

/** Sysctls that a namespace isolates, by the namespace (runc's list). */
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

function hasNamespace(spec: OciSpec, type: string): boolean {
  return (spec.linux?.namespaces ?? []).some((n) => n.type === type);
}

function checkSysctl(spec: OciSpec, key: string): void {
  const field = `linux.sysctl.${key}`;
  if (IPC_SYSCTLS.has(key) || key.startsWith('fs.mqueue.')) {
    if (!hasNamespace(spec, 'ipc'))
      throw new UnsupportedError(field, 'an IPC sysctl needs an ipc namespace in linux.namespaces');
    return;
  }
  if (key.startsWith('net.')) {
    if (!hasNamespace(spec, 'network'))
      throw new UnsupportedError(field, 'a net sysctl needs a network namespace in linux.namespaces');
    return;
  }
  if (key === 'kernel.domainname' || key === 'kernel.hostname') {
    if (!hasNamespace(spec, 'uts'))
      throw new UnsupportedError(field, 'needs a uts namespace in linux.namespaces');
    if (key === 'kernel.hostname')
      throw new UnsupportedError(field, 'set the hostname field of config.json instead');
    return;
  }
  throw new UnsupportedError(
    field,
    'not a namespaced sysctl: it would change the host (only kernel.msg*, kernel.sem, kernel.shm*, fs.mqueue.*, net.* and kernel.domainname are allowed)',
  );
}

/** True when the kernel has AppArmor enabled. */
function appArmorEnabled(): boolean {
  try {
    return readFileSync('/sys/module/apparmor/parameters/enabled', 'utf8').startsWith('Y');
  } catch {
    return false;
  }
}

/**
 * Throws an UnsupportedError naming the first field of `spec` that corral-runtime does not
 * implement or this host cannot do.
 */
export function checkSupported(spec: OciSpec): void {
  if (!/^1\.\d+\.\d+(-[0-9A-Za-z.+-]*)?$/.test(spec.ociVersion))
    throw new UnsupportedError(
      'ociVersion',
      `${JSON.stringify(spec.ociVersion)} is not a 1.x version of the runtime spec`,
    );
  const s = spec as unknown as Record<string, Record<string, unknown> | undefined>;
  for (const other of ['solaris', 'windows', 'vm', 'zos'])
    if (present(s[other])) throw new UnsupportedError(other, 'not for Linux: remove it');

  const p = spec.process as unknown as Record<string, unknown>;
  if (present(p.apparmorProfile))
    throw new UnsupportedError(
      'process.apparmorProfile',
      appArmorEnabled()
        ? 'AppArmor profiles are not supported by corral-runtime yet'
        : 'AppArmor is not enabled on this host',
    );
  if (present(p.selinuxLabel))
    throw new UnsupportedError('process.selinuxLabel', 'SELinux labels are not supported by corral-runtime');
  for (const f of ['scheduler', 'ioPriority', 'execCPUAffinity', 'commandLine'])
    if (present(p[f])) throw new UnsupportedError(`process.${f}`, 'not supported by corral-runtime');
  if (present((spec.process.user as Record<string, unknown>).username))
    throw new UnsupportedError('process.user.username', 'for Windows only');

  for (const [i, m] of (spec.mounts ?? []).entries()) {
    const mount = m as unknown as Record<string, unknown>;
    for (const f of ['uidMappings', 'gidMappings'])
      if (present(mount[f]))
        throw new UnsupportedError(
          `mounts[${i}].${f}`,
          'ID-mapped mounts are not supported by corral-runtime',
        );
  }

  for (const name of HOOK_NAMES) {
    const list: unknown = spec.hooks?.[name];
    if (list === undefined) continue;
    if (!Array.isArray(list)) throw new UnsupportedError(`hooks.${name}`, 'must be a list of hooks');
    for (const [i, h] of (list as OciHook[]).entries()) {
      if (typeof h?.path !== 'string' || !h.path.startsWith('/'))
        throw new UnsupportedError(`hooks.${name}[${i}].path`, 'must be an absolute path');
      if (h.timeout !== undefined && (!Number.isInteger(h.timeout) || h.timeout <= 0))
        throw new UnsupportedError(`hooks.${name}[${i}].timeout`, 'must be a positive number of seconds');
    }
  }

  const linux = (spec.linux ?? {}) as Record<string, unknown>;
  for (const f of ['uidMappings', 'gidMappings'])
    if (present(linux[f]))
      throw new UnsupportedError(`linux.${f}`, 'user namespaces are not supported: corral is rootful');
  if (present(linux.timeOffsets))
    throw new UnsupportedError('linux.timeOffsets', 'time namespaces are not supported by corral-runtime');
  if (present(linux.mountLabel))
    throw new UnsupportedError('linux.mountLabel', 'SELinux labels are not supported by corral-runtime');
  for (const f of ['netDevices', 'memoryPolicy'])
    if (present(linux[f])) throw new UnsupportedError(`linux.${f}`, 'not supported by corral-runtime');
  for (const ns of spec.linux?.namespaces ?? [])
    if (ns.type === 'time')
      throw new UnsupportedError('linux.namespaces', 'time namespaces are not supported by corral-runtime');
  if (spec.linux?.intelRdt !== undefined) {
    throw new UnsupportedError(
      'linux.intelRdt',
      existsSync('/sys/fs/resctrl/schemata')
        ? 'Intel RDT (resctrl) is not supported by corral-runtime yet'
        : 'this host has no resctrl filesystem mounted at /sys/fs/resctrl (no Intel RDT)',
    );
  }
  if (present(spec.linux?.resources?.unified)) {
    const mode = detectCgroupMode();
    throw new UnsupportedError(
      'linux.resources.unified',
      mode === 'v2'
        ? 'cgroup v2 unified keys are not supported by corral-runtime yet'
        : `needs cgroup v2 with its controllers, but this host's controllers are on v1 (${mode})`,
    );
  }
  const personality = spec.linux?.personality;
  if (personality) {
    if (personality.domain !== 'LINUX' && personality.domain !== 'LINUX32')
      throw new UnsupportedError(
        'linux.personality.domain',
        `unknown domain ${personality.domain}: use LINUX or LINUX32`,
      );
    if (present(personality.flags))
      throw new UnsupportedError(
        'linux.personality.flags',
        'personality flags are not supported by corral-runtime',
      );
  }
  for (const key of Object.keys(spec.linux?.sysctl ?? {})) checkSysctl(spec, key);
}

/**
 * A bundle's config.json, valid and within what this runtime and host can do, and its root
 * filesystem, which must be a folder.
 */
export function readBundle(bundle: string): { spec: OciSpec; rootfs: string } {
  let spec: OciSpec;
  try {
    spec = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8'));
  } catch (e) {
    throw new RuntimeError(`reading ${join(bundle, 'config.json')}: ${(e as Error).message}`);
  }
  try {
    validateSpec(spec);
    checkSupported(spec);
  } catch (e) {
    throw new RuntimeError((e as Error).message);
  }
  const rootfs = resolve(bundle, spec.root.path);
  if (!existsSync(rootfs) || !statSync(rootfs).isDirectory())
    throw new RuntimeError(`rootfs ${rootfs} does not exist or is not a directory`);
  return { spec, rootfs };
}
