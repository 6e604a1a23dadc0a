// `features` (the JSON runc 1.1+ prints, for what corral-runtime supports) and `spec` (a
// sample config.json, as `runc spec` writes).
import { existsSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { CAP } from '@corral/sys';
import { MOUNT_OPTION_NAMES } from '../mount-options.js';
import { DEFAULT_DEV_MOUNTS, HOOK_NAMES } from '../spec.js';
import { OCI_VERSION } from '../state.js';
import { type Globals, parseFlags, UsageError } from './args.js';
import { writeOut } from './out.js';
import { VERSION } from './version.js';

const CAPABILITIES = Object.entries(CAP)
  .sort((a, b) => a[1] - b[1])
  .map(([name]) => `CAP_${name}`);

export async function features(_g: Globals, argv: string[]): Promise<number> {
  parseFlags(argv, {});
  const out = {
    ociVersionMin: '1.0.0',
    ociVersionMax: OCI_VERSION,
    hooks: [...HOOK_NAMES],
    mountOptions: MOUNT_OPTION_NAMES,
    linux: {
      namespaces: ['cgroup', 'ipc', 'mount', 'network', 'pid', 'uts'],
      capabilities: CAPABILITIES,
      cgroup: { v1: true, v2: true, systemd: false, systemdUser: false },
      seccomp: {
        enabled: true,
        actions: [
          'SCMP_ACT_ALLOW',
          'SCMP_ACT_ERRNO',
          'SCMP_ACT_KILL',
          'SCMP_ACT_KILL_PROCESS',
          'SCMP_ACT_KILL_THREAD',
          'SCMP_ACT_LOG',
          'SCMP_ACT_TRACE',
          'SCMP_ACT_TRAP',
        ],
        operators: [
          'SCMP_CMP_EQ',
          'SCMP_CMP_GE',
          'SCMP_CMP_GT',
          'SCMP_CMP_LE',
          'SCMP_CMP_LT',
          'SCMP_CMP_MASKED_EQ',
          'SCMP_CMP_NE',
        ],
        archs: ['SCMP_ARCH_AARCH64', 'SCMP_ARCH_X86_64'],
      },
      apparmor: { enabled: false },
      selinux: { enabled: false },
    },
    annotations: {
      'run.corral.runtime.version': VERSION,
      'run.corral.node.version': process.version,
    },
  };
  writeOut(`${JSON.stringify(out, null, 4)}\n`);
  return 0;
}

/** A sample config: a busybox-style `sh` on a terminal in a read-only rootfs, as `runc spec`. */
export function sampleSpec(): Record<string, unknown> {
  const caps = ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE'];
  return {
    ociVersion: OCI_VERSION,
    process: {
      terminal: true,
      user: { uid: 0, gid: 0 },
      args: ['sh'],
      env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'TERM=xterm'],
      cwd: '/',
      capabilities: { bounding: caps, effective: caps, permitted: caps, ambient: caps },
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 }],
      noNewPrivileges: true,
    },
    root: { path: 'rootfs', readonly: true },
    hostname: 'corral',
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      ...DEFAULT_DEV_MOUNTS,
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
    ],
    linux: {
      resources: { devices: [{ allow: false, access: 'rwm' }] },
      namespaces: [{ type: 'pid' }, { type: 'network' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }],
      maskedPaths: [
        '/proc/acpi',
        '/proc/asound',
        '/proc/kcore',
        '/proc/keys',
        '/proc/latency_stats',
        '/proc/timer_list',
        '/proc/timer_stats',
        '/proc/sched_debug',
        '/sys/firmware',
        '/proc/scsi',
      ],
      readonlyPaths: ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
    },
  };
}

export async function spec(_g: Globals, argv: string[]): Promise<number> {
  const { flags } = parseFlags(argv, {
    bundle: { type: 'string', alias: ['b'] },
    rootless: { type: 'bool' },
  });
  if (flags.rootless)
    throw new UsageError('rootless containers are not supported: corral-runtime runs as root');
  const file = join(resolve((flags.bundle as string | undefined) ?? '.'), 'config.json');
  if (existsSync(file)) throw new Error('File config.json exists. Remove it first');
  writeFileSync(file, `${JSON.stringify(sampleSpec(), null, '\t')}\n`);
  return 0;
}
