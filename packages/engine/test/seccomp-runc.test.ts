// Side by side with runc (libseccomp): one probe, one profile, two runtimes, verdicts compared
// syscall by syscall. Profiles: Docker's default as the engine resolves it for a default
// container and for one with --cap-add SYS_ADMIN, Debian's containers-common profile, and one
// made to test each comparison on 64-bit arguments.
import { readFileSync } from 'node:fs';
import type { OciSeccomp } from '@corral/runtime';
import { removeTree, tempDir } from '@corral/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseJsonExact, resolveSeccompProfile } from '../src/seccomp.js';
import { DEFAULT_SECCOMP_PROFILE } from '../src/seccomp-default.js';
import { capabilityNames } from '../src/spec.js';
import {
  marked,
  type ProbeCase,
  probeArgs,
  probeRootfs,
  probeSpec,
  underCorral,
  underRunc,
  verdict,
} from './seccomp-probe.js';

const tmp = tempDir('seccomp-runc');
let rootfs = '';
beforeAll(() => {
  rootfs = probeRootfs(tmp);
});
afterAll(() => removeTree(tmp));

const caps = (capAdd: string[] = []) =>
  capabilityNames({ privileged: false, capAdd, capDrop: [] } as never as Parameters<
    typeof capabilityNames
  >[0]);

const SIGCHLD = 17;
const CLONE = {
  NEWNS: 0x20000,
  NEWCGROUP: 0x2000000,
  NEWUTS: 0x4000000,
  NEWIPC: 0x8000000,
  NEWUSER: 0x10000000,
  NEWPID: 0x20000000,
  NEWNET: 0x40000000,
};
const BAD = 1; // an address that faults: a call let through fails with EFAULT

/** Calls whose verdict Docker's profile decides by capability, argument or not at all. */
const DEFAULT_CASES: ProbeCase[] = [
  ['getpid', 'getpid'],
  ['read', 'read', -1, 0, 0],
  ['fork', 'clone', SIGCHLD, 0, 0, 0, 0],
  ['clone-newuser', 'clone', CLONE.NEWUSER | SIGCHLD, 0, 0, 0, 0],
  ['clone-newns', 'clone', CLONE.NEWNS | SIGCHLD, 0, 0, 0, 0],
  ['clone-newnet', 'clone', CLONE.NEWNET | SIGCHLD, 0, 0, 0, 0],
  ['clone-newcgroup', 'clone', CLONE.NEWCGROUP | SIGCHLD, 0, 0, 0, 0],
  ['clone-high-bits', 'clone', (1n << 32n) | BigInt(SIGCHLD), 0, 0, 0, 0],
  ['clone3', 'clone3', 0, 0],
  ['unshare-user', 'unshare', CLONE.NEWUSER],
  ['unshare-ns', 'unshare', CLONE.NEWNS],
  ['setns', 'setns', -1, 0],
  ['mount', 'mount', BAD, BAD, BAD, 0, 0],
  ['umount2', 'umount2', BAD, 0],
  ['pivot_root', 'pivot_root', BAD, BAD],
  ['fsopen', 'fsopen', BAD, 0],
  ['open_tree', 'open_tree', -1, BAD, 0],
  ['move_mount', 'move_mount', -1, BAD, -1, BAD, 0],
  ['mount_setattr', 'mount_setattr', -1, BAD, 0, BAD, 32],
  ['syslog', 'syslog', -1, 0, 0],
  ['keyctl', 'keyctl', -1, 0, 0, 0, 0],
  ['add_key', 'add_key', BAD, BAD, 0, 0, 0],
  ['bpf', 'bpf', -1, 0, 0],
  ['perf_event_open', 'perf_event_open', BAD, 0, -1, -1, 0],
  ['ptrace', 'ptrace', -1, 0, 0, 0],
  ['process_vm_readv', 'process_vm_readv', 0, BAD, 1, BAD, 1, 0],
  ['kcmp', 'kcmp', 0, 0, -1, 0, 0],
  ['reboot', 'reboot', 0, 0, 0, 0],
  ['kexec_load', 'kexec_load', 0, 0, 0, 0],
  ['init_module', 'init_module', BAD, 0, BAD],
  ['delete_module', 'delete_module', BAD, 0],
  ['acct', 'acct', BAD],
  ['swapoff', 'swapoff', BAD],
  ['settimeofday', 'settimeofday', BAD, BAD],
  ['clock_settime', 'clock_settime', -1, BAD],
  ['sethostname', 'sethostname', BAD, -1],
  ['chroot', 'chroot', BAD],
  ['io_uring_setup', 'io_uring_setup', 0, BAD],
  ['userfaultfd', 'userfaultfd', 0],
  ['open_by_handle_at', 'open_by_handle_at', -1, BAD, 0],
  ['name_to_handle_at', 'name_to_handle_at', -1, BAD, BAD, BAD, 0],
  ['get_mempolicy', 'get_mempolicy', BAD, BAD, 0, 0, 0],
  ['uselib', 'uselib', BAD],
  ['ustat', 'ustat', 0, BAD],
  ['personality-query', 'personality', 0xffffffff],
  ['personality-linux', 'personality', 0],
  ['personality-8', 'personality', 8],
  ['personality-0x20000', 'personality', 0x20000],
  ['personality-0x20008', 'personality', 0x20008],
  ['personality-read-implies-exec', 'personality', 0x0400000],
  ['personality-high-half', 'personality', 1n << 32n],
  ['socket-inet', 'socket', 2, 1, 0],
  ['socket-alg', 'socket', 38, 5, 0],
  ['socket-nfc', 'socket', 39, 1, 0],
  ['socket-vsock', 'socket', 40, 1, 0],
  ['socket-kcm', 'socket', 41, 1, 0],
  ['socket-netlink-audit', 'socket', 16, 3, 9],
  ['socket-netlink-route', 'socket', 16, 3, 0],
  ['socket-high-half', 'socket', (1n << 32n) | 2n, 1, 0],
];

async function compare(profile: OciSeccomp, capList: string[], cases: readonly ProbeCase[]) {
  const args = probeArgs(cases);
  const runc = underRunc(tmp, probeSpec(rootfs, args, capList, profile));
  const corral = await underCorral(tmp, probeSpec(rootfs, args, capList, profile));
  expect(runc).toHaveLength(cases.length);
  // The whole answers first (kernel errnos included), then the verdicts for the report.
  expect(corral).toEqual(runc);
  return Object.fromEntries(corral.map(verdict));
}

describe('seccomp verdicts: corral runtime vs runc, same profile', () => {
  it("Docker's default profile for a default container", async () => {
    const c = caps();
    const v = await compare(
      marked(resolveSeccompProfile(DEFAULT_SECCOMP_PROFILE, { caps: c })!),
      c,
      DEFAULT_CASES,
    );
    expect(v).toMatchObject({
      getpid: 'allowed',
      fork: 'allowed',
      'clone-newuser': 'denied 1',
      'clone-newns': 'denied 1',
      clone3: 'denied 38',
      'unshare-user': 'denied 1',
      mount: 'denied 1',
      'personality-query': 'allowed',
      'personality-read-implies-exec': 'denied 1',
      'personality-high-half': 'denied 1',
      'socket-inet': 'allowed',
      'socket-vsock': 'denied 1',
      'socket-alg': 'denied 1',
      chroot: 'allowed',
    });
  });

  it("Docker's default profile with CAP_SYS_ADMIN opens namespaces and mounts", async () => {
    const c = caps(['SYS_ADMIN']);
    const v = await compare(
      marked(resolveSeccompProfile(DEFAULT_SECCOMP_PROFILE, { caps: c })!),
      c,
      DEFAULT_CASES,
    );
    expect(v).toMatchObject({
      'clone-newuser': 'allowed',
      clone3: 'allowed',
      'unshare-user': 'allowed',
      mount: 'allowed',
      setns: 'allowed',
      syslog: 'allowed',
      reboot: 'denied 1',
    });
  });

  it("Debian's containers-common profile, loaded unchanged", async () => {
    const c = caps();
    const text = readFileSync('/usr/share/containers/seccomp.json', 'utf8');
    const profile = resolveSeccompProfile(parseJsonExact(text) as never, { caps: c })!;
    const v = await compare(marked(profile), c, DEFAULT_CASES);
    expect(v).toMatchObject({
      'unshare-user': 'allowed',
      'socket-netlink-audit': 'allowed',
      bpf: 'denied 1',
    });
  });

  it('several rules for one syscall: an unconditional one decides, one with the default action is left out', async () => {
    const errno = (errnoRet: number, whence?: number) => ({
      names: ['lseek'],
      action: 'SCMP_ACT_ERRNO',
      errnoRet,
      ...(whence === undefined ? {} : { args: [{ index: 2, value: whence, op: 'SCMP_CMP_EQ' }] }),
    });
    const cases: ProbeCase[] = [0, 1, 2].map((w) => [`whence-${w}`, 'lseek', -1, 0, w]);
    const profiles: OciSeccomp['syscalls'][] = [
      [errno(1001), errno(1002, 1)],
      [errno(1002, 1), errno(1001)],
      [{ names: ['lseek'], action: 'SCMP_ACT_ALLOW' }, errno(1005, 1), errno(1006, 2)],
      [{ ...errno(0, 1), action: 'SCMP_ACT_LOG' }, errno(1011)],
      [errno(1008), errno(1009)],
    ];
    for (const syscalls of profiles)
      await compare({ defaultAction: 'SCMP_ACT_ALLOW', syscalls }, caps(), cases);
  });

  it('each comparison on 64-bit arguments, across the 32-bit boundary', async () => {
    const V = 0x1_0000_0005;
    const rule = (name: string, index: number, op: string, errnoRet: number, valueTwo?: number) => ({
      names: [name],
      action: 'SCMP_ACT_ERRNO',
      errnoRet,
      args: [{ index, value: op === 'MASKED_EQ' ? 0xf_0000_000f : V, valueTwo, op: `SCMP_CMP_${op}` }],
    });
    const profile: OciSeccomp = {
      defaultAction: 'SCMP_ACT_ALLOW',
      syscalls: [
        rule('lseek', 1, 'NE', 1001),
        rule('ftruncate', 1, 'EQ', 1002),
        rule('fadvise64', 1, 'LE', 1003),
        rule('pread64', 3, 'LT', 1004),
        rule('fallocate', 2, 'GE', 1005),
        rule('readahead', 1, 'GT', 1006),
        rule('sync_file_range', 1, 'MASKED_EQ', 1007, 0x1_0000_0005),
      ],
    };
    const values = [
      0,
      4,
      5,
      6,
      0xffffffff,
      0x1_0000_0000,
      0x1_0000_0004,
      V,
      0x1_0000_0006,
      0x2_0000_0004,
      0x2_0000_0005,
    ];
    const cases: ProbeCase[] = values.flatMap((x) => [
      [`ne-${x}`, 'lseek', -1, x, 0],
      [`eq-${x}`, 'ftruncate', -1, x],
      [`le-${x}`, 'fadvise64', -1, x, 0, 0],
      [`lt-${x}`, 'pread64', -1, 0, 0, x],
      [`ge-${x}`, 'fallocate', -1, 0, x, 1],
      [`gt-${x}`, 'readahead', -1, x, 1],
      [`masked-${x}`, 'sync_file_range', -1, x, 0, 0],
    ]);
    await compare(profile, caps(), cases);
  });
});
