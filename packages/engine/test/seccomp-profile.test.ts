import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { compileProfile, type OciSeccomp } from '@corral/runtime';
import { SECCOMP_MAX_INSNS } from '@corral/sys';
import { removeTree, tempDir } from '@corral/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import {
  type DockerSeccompProfile,
  loadSeccompProfile,
  parseJsonExact,
  resolveSeccompProfile,
} from '../src/seccomp.js';
import { DEFAULT_SECCOMP_PROFILE } from '../src/seccomp-default.js';
import { capabilityNames } from '../src/spec.js';

const tmp = tempDir('seccomp-profile');
afterAll(() => removeTree(tmp));

const caps = (capAdd: string[] = []) =>
  capabilityNames({ privileged: false, capAdd, capDrop: [] } as never as Parameters<
    typeof capabilityNames
  >[0]);
const ALL_CAPS = caps(['ALL']);

/** Every rule of a resolved profile that names `name`. */
const rulesFor = (p: OciSeccomp | undefined, name: string) =>
  (p?.syscalls ?? []).filter((s) => s.names.includes(name));

describe("Docker's default profile, resolved for a container", () => {
  it('denies by default with EPERM and lists the native architecture with its sub-architectures', () => {
    const p = resolveSeccompProfile(DEFAULT_SECCOMP_PROFILE, { caps: caps(), arch: 'x64' });
    expect(p).toMatchObject({ defaultAction: 'SCMP_ACT_ERRNO', defaultErrnoRet: 1 });
    expect(p?.architectures).toEqual(['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32']);
    expect(
      resolveSeccompProfile(DEFAULT_SECCOMP_PROFILE, { caps: caps(), arch: 'arm64' })?.architectures,
    ).toEqual(['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM']);
  });

  it('keeps mount, unshare and setns out, and clone only without namespace flags, unless CAP_SYS_ADMIN', () => {
    const plain = resolveSeccompProfile(DEFAULT_SECCOMP_PROFILE, { caps: caps(), arch: 'x64' });
    for (const name of ['mount', 'unshare', 'setns', 'umount2', 'fsopen', 'syslog', 'bpf'])
      expect(rulesFor(plain, name)).toEqual([]);
    expect(rulesFor(plain, 'clone')).toEqual([
      {
        names: ['clone'],
        action: 'SCMP_ACT_ALLOW',
        args: [{ index: 0, value: 0x7e020000, op: 'SCMP_CMP_MASKED_EQ' }],
      },
    ]);
    expect(rulesFor(plain, 'clone3')).toEqual([
      { names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: 38 },
    ]);
    const admin = resolveSeccompProfile(DEFAULT_SECCOMP_PROFILE, { caps: caps(['SYS_ADMIN']), arch: 'x64' });
    for (const name of ['mount', 'unshare', 'setns', 'clone', 'clone3'])
      expect(rulesFor(admin, name).map((r) => [r.action, r.args])).toEqual([['SCMP_ACT_ALLOW', undefined]]);
  });

  it('applies arch and kernel conditions: arch_prctl on amd64 only, ptrace from 4.8 on', () => {
    expect(
      rulesFor(resolveSeccompProfile(DEFAULT_SECCOMP_PROFILE, { caps: caps(), arch: 'x64' }), 'arch_prctl'),
    ).toHaveLength(1);
    expect(
      rulesFor(resolveSeccompProfile(DEFAULT_SECCOMP_PROFILE, { caps: caps(), arch: 'arm64' }), 'arch_prctl'),
    ).toHaveLength(0);
    const old = resolveSeccompProfile(DEFAULT_SECCOMP_PROFILE, {
      caps: caps(),
      arch: 'x64',
      kernel: '4.4.0-1-amd64',
    });
    expect(rulesFor(old, 'ptrace')).toHaveLength(0);
    const now = resolveSeccompProfile(DEFAULT_SECCOMP_PROFILE, {
      caps: caps(),
      arch: 'x64',
      kernel: '6.18.4',
    });
    expect(rulesFor(now, 'ptrace')).toHaveLength(1);
  });

  it(`compiles within the kernel's ${SECCOMP_MAX_INSNS} instructions, even with every capability`, () => {
    for (const c of [caps(), ALL_CAPS]) {
      const program = compileProfile(resolveSeccompProfile(DEFAULT_SECCOMP_PROFILE, { caps: c })!);
      expect(program.length / 8).toBeLessThan(SECCOMP_MAX_INSNS);
      expect(program.length / 8).toBeLessThan(1000);
    }
  });
});

describe('profiles in Docker format from a file', () => {
  const file = (name: string, text: string) => {
    const path = join(tmp, name);
    writeFileSync(path, text);
    return path;
  };

  it("loads Debian's containers-common profile unchanged", () => {
    const p = loadSeccompProfile('/usr/share/containers/seccomp.json', { caps: caps() });
    expect(p?.defaultAction).toBe('SCMP_ACT_ERRNO');
    expect(p?.defaultErrnoRet).toBe(38);
    // With CAP_AUDIT_WRITE (a default) its netlink-audit rules give way to a plain allow.
    expect(rulesFor(p, 'socket')).toEqual([{ names: ['socket'], action: 'SCMP_ACT_ALLOW' }]);
  });

  it('takes the one-name form, args with valueTwo, and values past 2^53 exactly', () => {
    const p = loadSeccompProfile(
      file(
        'big.json',
        `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"name":"lseek","action":"SCMP_ACT_ERRNO",
          "comment":"a \\"quoted\\" 18446744073709551615 in a string",
          "args":[{"index":1,"value":18446744073709551615,"valueTwo":9007199254740993,"op":"SCMP_CMP_MASKED_EQ"}]}]}`,
      ),
      { caps: caps() },
    );
    expect(p?.syscalls?.[0]).toEqual({
      names: ['lseek'],
      action: 'SCMP_ACT_ERRNO',
      args: [
        { index: 1, value: '18446744073709551615', valueTwo: '9007199254740993', op: 'SCMP_CMP_MASKED_EQ' },
      ],
    });
    expect(parseJsonExact('{"a":"12345678901234567890","b":[1.5e300,-3]}')).toEqual({
      a: '12345678901234567890',
      b: [1.5e300, -3],
    });
  });

  it('means no filter for an empty profile, as Docker does', () => {
    expect(loadSeccompProfile(file('empty.json', '{}'), { caps: caps() })).toBeUndefined();
  });

  it('refuses malformed profiles with the file and the place named', () => {
    const bad: [string, string][] = [
      ['{"defaultAction":', 'not valid JSON'],
      ['[]', 'profile: must be a JSON object'],
      ['{"defaultAction":"SCMP_ACT_ALLOW","syscalls":{}}', 'syscalls: must be a list'],
      ['{"defaultAction":"SCMP_ACT_NOPE"}', 'defaultAction: unknown action'],
      [
        '{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64"],"archMap":[{"architecture":"SCMP_ARCH_X86_64"}]}',
        "both 'architectures' and 'archMap'",
      ],
      [
        '{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"name":"read","names":["write"],"action":"SCMP_ACT_ALLOW"}]}',
        "syscalls[0]: both 'name' and 'names'",
      ],
      [
        '{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW","includes":{"caps":"CAP_X"}}]}',
        'syscalls[0].includes.caps: must be a list of strings',
      ],
      [
        '{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW","includes":{"minKernel":"4"}}]}',
        'syscalls[0].includes.minKernel',
      ],
      [
        '{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":1,"op":"SCMP_CMP_APPROX"}]}]}',
        'syscalls[0].args[0].op: unknown comparison',
      ],
    ];
    bad.forEach(([text, message], i) => {
      const path = file(`bad${i}.json`, text);
      expect(() => loadSeccompProfile(path, { caps: caps() })).toThrow(`seccomp profile ${path}: `);
      expect(() => loadSeccompProfile(path, { caps: caps() })).toThrow(message);
    });
    expect(() => loadSeccompProfile(join(tmp, 'missing.json'), { caps: caps() })).toThrow('ENOENT');
    expect(() => loadSeccompProfile(tmp, { caps: caps() })).toThrow('not a regular file');
  });

  it('resolves includes and excludes by every listed capability (Docker: all for includes, any for excludes)', () => {
    const profile: DockerSeccompProfile = {
      defaultAction: 'SCMP_ACT_ERRNO',
      syscalls: [
        { names: ['a'], action: 'SCMP_ACT_ALLOW', includes: { caps: ['CAP_SYS_ADMIN', 'CAP_CHOWN'] } },
        { names: ['b'], action: 'SCMP_ACT_ALLOW', includes: { caps: ['CAP_CHOWN'] } },
        { names: ['c'], action: 'SCMP_ACT_ALLOW', excludes: { caps: ['CAP_SYS_ADMIN', 'CAP_CHOWN'] } },
        { names: ['d'], action: 'SCMP_ACT_ALLOW', excludes: { caps: ['CAP_SYS_ADMIN'] } },
        { names: ['e'], action: 'SCMP_ACT_ALLOW', includes: { arches: ['s390x'] } },
      ],
    };
    const names = (c: string[]) =>
      resolveSeccompProfile(profile, { caps: c, arch: 'x64' })?.syscalls?.map((s) => s.names[0]);
    expect(names(['CAP_CHOWN'])).toEqual(['b', 'd']);
    expect(names(['CAP_CHOWN', 'CAP_SYS_ADMIN'])).toEqual(['a', 'b']);
    expect(names([])).toEqual(['c', 'd']);
  });
});
