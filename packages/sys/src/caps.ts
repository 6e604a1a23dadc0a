import { readFileSync } from 'node:fs';
import { check, fn } from './libc.js';

/** Linux capabilities by name (linux/capability.h). */
export const CAP: Readonly<Record<string, number>> = {
  CHOWN: 0,
  DAC_OVERRIDE: 1,
  DAC_READ_SEARCH: 2,
  FOWNER: 3,
  FSETID: 4,
  KILL: 5,
  SETGID: 6,
  SETUID: 7,
  SETPCAP: 8,
  LINUX_IMMUTABLE: 9,
  NET_BIND_SERVICE: 10,
  NET_BROADCAST: 11,
  NET_ADMIN: 12,
  NET_RAW: 13,
  IPC_LOCK: 14,
  IPC_OWNER: 15,
  SYS_MODULE: 16,
  SYS_RAWIO: 17,
  SYS_CHROOT: 18,
  SYS_PTRACE: 19,
  SYS_PACCT: 20,
  SYS_ADMIN: 21,
  SYS_BOOT: 22,
  SYS_NICE: 23,
  SYS_RESOURCE: 24,
  SYS_TIME: 25,
  SYS_TTY_CONFIG: 26,
  MKNOD: 27,
  LEASE: 28,
  AUDIT_WRITE: 29,
  AUDIT_CONTROL: 30,
  SETFCAP: 31,
  MAC_OVERRIDE: 32,
  MAC_ADMIN: 33,
  SYSLOG: 34,
  WAKE_ALARM: 35,
  BLOCK_SUSPEND: 36,
  AUDIT_READ: 37,
  PERFMON: 38,
  BPF: 39,
  CHECKPOINT_RESTORE: 40,
};

/** The number of a capability given as `CAP_SYS_ADMIN`, `SYS_ADMIN` or `sys_admin`. */
export function parseCapability(name: string): number {
  const key = name.toUpperCase().replace(/^CAP_/, '');
  const n = CAP[key];
  if (n === undefined) throw new TypeError(`unknown capability: ${name}`);
  return n;
}

/** The highest capability this kernel knows. */
export function lastCapability(): number {
  return Number(readFileSync('/proc/sys/kernel/cap_last_cap', 'utf8'));
}

const PR_CAPBSET_DROP = 24;
const PR_SET_KEEPCAPS = 8;
const PR_CAP_AMBIENT = 47;
const PR_CAP_AMBIENT_RAISE = 2;
const LINUX_CAPABILITY_VERSION_3 = 0x20080522;

/** Removes a capability from the bounding set: no exec can ever regain it. */
export function dropBoundingCapability(cap: number): void {
  check('prctl', fn.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), ['PR_CAPBSET_DROP', cap]);
}

/** Keeps permitted capabilities across a change of uid away from 0 (until the next execve). */
export function keepCapabilities(keep: boolean): void {
  check('prctl', fn.prctl(PR_SET_KEEPCAPS, keep ? 1 : 0, 0, 0, 0), ['PR_SET_KEEPCAPS']);
}

export function raiseAmbientCapability(cap: number): void {
  check('prctl', fn.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0), ['PR_CAP_AMBIENT_RAISE', cap]);
}

/** The three capability sets of this thread, as bit masks (bit N = capability N). */
export interface CapabilitySets {
  effective: bigint;
  permitted: bigint;
  inheritable: bigint;
}

/** capset(2) for the calling thread. */
export function capset(sets: CapabilitySets): void {
  const header = Buffer.alloc(8);
  header.writeUInt32LE(LINUX_CAPABILITY_VERSION_3, 0);
  const data = Buffer.alloc(24);
  const words = [sets.effective, sets.permitted, sets.inheritable];
  for (let half = 0; half < 2; half++) {
    for (let i = 0; i < 3; i++) {
      data.writeUInt32LE(Number((words[i] >> BigInt(32 * half)) & 0xffffffffn), half * 12 + i * 4);
    }
  }
  const r: number = fn.capset(header, data);
  check('capset', r, []);
}

/** The mask of a list of capability names. */
export function capabilityMask(names: readonly string[]): bigint {
  let mask = 0n;
  for (const n of names) mask |= 1n << BigInt(parseCapability(n));
  return mask;
}
