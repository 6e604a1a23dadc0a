import { describe, expect, it } from 'vitest';
import { compileProfile, type OciSeccomp, profileRules } from '../dist/index.js';

const base: OciSeccomp = { defaultAction: 'SCMP_ACT_ERRNO', syscalls: [] };
const withRule = (rule: Record<string, unknown>): OciSeccomp =>
  ({ ...base, syscalls: [{ names: ['lseek'], action: 'SCMP_ACT_ERRNO', ...rule }] }) as OciSeccomp;

describe('compileProfile (OCI linux.seccomp)', () => {
  it('turns every SCMP_CMP op and action into rules, values exact past 2^53', () => {
    const ops = ['NE', 'LT', 'LE', 'EQ', 'GE', 'GT', 'MASKED_EQ'];
    const { rules, defaultAction, defaultErrno } = profileRules({
      defaultAction: 'SCMP_ACT_ERRNO',
      defaultErrnoRet: 38,
      architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'],
      syscalls: [
        ...ops.map((op) => ({
          names: ['lseek'],
          action: 'SCMP_ACT_ALLOW',
          args: [{ index: 1, value: '18446744073709551615', valueTwo: '0x10', op: `SCMP_CMP_${op}` }],
        })),
        ...['KILL', 'KILL_THREAD', 'KILL_PROCESS', 'TRAP', 'LOG', 'TRACE'].map((a) => ({
          names: ['getppid'],
          action: `SCMP_ACT_${a}`,
        })),
      ],
    });
    expect(defaultAction).toBe(0x00050000);
    expect(defaultErrno).toBe(38);
    expect(rules.slice(0, 7).map((r) => r.args?.[0])).toEqual(
      ops.map((op) => ({ index: 1, op, value: (1n << 64n) - 1n, valueTwo: 16n })),
    );
    expect(rules.slice(7).map((r) => r.action)).toEqual([0, 0, 0x80000000, 0x30000, 0x7ffc0000, 0x7ff00000]);
  });

  it("leaves out syscalls this architecture lacks, as runc does (profiles list every arch's)", () => {
    const { rules } = profileRules({
      ...base,
      syscalls: [{ names: ['getpid', 'socketcall', 'no_such_call'], action: 'SCMP_ACT_ALLOW' }],
    });
    expect(rules[0].names).toEqual(['getpid']);
  });

  it('refuses what it cannot honour, saying where', () => {
    const bad: [OciSeccomp, string][] = [
      [{ ...base, defaultAction: 'SCMP_ACT_NOPE' }, 'defaultAction: unknown action "SCMP_ACT_NOPE"'],
      [withRule({ action: 'SCMP_ACT_NOTIFY' }), 'SCMP_ACT_NOTIFY (a seccomp agent) is not supported'],
      [withRule({ args: [{ index: 0, value: 1, op: 'SCMP_CMP_XX' }] }), 'syscalls[0].args[0].op'],
      [withRule({ args: [{ index: 6, value: 1, op: 'SCMP_CMP_EQ' }] }), 'syscalls[0].args[0].index'],
      [withRule({ args: [{ index: 0, value: -1, op: 'SCMP_CMP_EQ' }] }), 'not an unsigned 64-bit value'],
      [withRule({ args: [{ index: 0, value: 2 ** 60, op: 'SCMP_CMP_EQ' }] }), 'write it as a string'],
      [withRule({ errnoRet: 1e6 }), 'syscalls[0].errnoRet'],
      [withRule({ names: [] }), 'syscalls[0].names'],
      [{ ...base, architectures: ['SCMP_ARCH_VAX'] }, 'unknown architecture'],
      [{ ...base, flags: ['SECCOMP_FILTER_FLAG_TSYNC'] }, 'flags'],
    ];
    for (const [profile, message] of bad) expect(() => compileProfile(profile)).toThrow(message);
    expect(() => compileProfile({ ...base, flags: ['SECCOMP_FILTER_FLAG_SPEC_ALLOW'] })).not.toThrow();
  });
});
