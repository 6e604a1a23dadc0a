import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Cgroup } from '@corral/cgroups';

/** One rule of the OCI spec's linux.resources.devices (the device cgroup). */
export interface DeviceRule {
  allow: boolean;
  type?: 'a' | 'c' | 'b';
  major?: number | null;
  minor?: number | null;
  access?: string;
}

/** Docker's default device rules: nothing, except mknod anywhere and the usual character devices. */
export const DEFAULT_DEVICE_RULES: DeviceRule[] = [
  { allow: false, access: 'rwm' },
  { allow: true, type: 'c', access: 'm' },
  { allow: true, type: 'b', access: 'm' },
  ...[
    [1, 3],
    [1, 5],
    [1, 7],
    [1, 8],
    [1, 9],
    [5, 0],
    [5, 1],
    [5, 2],
    [10, 200],
  ].map(([major, minor]) => ({ allow: true, type: 'c' as const, major, minor, access: 'rwm' })),
  { allow: true, type: 'c', major: 136, access: 'rwm' },
];

function ruleLine(r: DeviceRule): string {
  const num = (n: number | null | undefined) => (n === undefined || n === null || n < 0 ? '*' : String(n));
  return `${r.type ?? 'a'} ${num(r.major)}:${num(r.minor)} ${r.access || 'rwm'}`;
}

/**
 * Writes device rules into a v1 devices cgroup, in order (a later rule overrides an earlier
 * one, as the spec says). On a v2 host device access is an eBPF program attached to the
 * cgroup, which corral does not load yet: there the rules are refused with an error rather
 * than silently ignored.
 */
export function applyDeviceRules(cgroup: Cgroup, rules: readonly DeviceRule[]): void {
  if (rules.length === 0) return;
  const dir = cgroup.dirs.devices;
  if (cgroup.backend !== 'v1' || !dir) {
    throw new Error(
      'device rules need the v1 devices controller; on cgroup v2 they need an eBPF device program, which corral does not load yet',
    );
  }
  for (const r of rules) writeFileSync(join(dir, r.allow ? 'devices.allow' : 'devices.deny'), ruleLine(r));
}

/**
 * The spec's device rules followed by the devices every container gets (as runc appends its
 * AllowedDevices): a spec that denies everything still has /dev/null, mknod, its ptys.
 */
export function withDefaultDevices(rules: DeviceRule[] | undefined): DeviceRule[] {
  if (!rules?.length) return [];
  return [...rules, ...DEFAULT_DEVICE_RULES.filter((r) => r.allow)];
}
