import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  compileSeccomp,
  SECCOMP_MAX_INSNS,
  SECCOMP_RET,
  type SeccompCondition,
  type SeccompOp,
  type SeccompRule,
} from '../src/index.js';

const EBADF = 9;
const child = join(__dirname, 'seccomp-child.mjs');

interface Spec {
  rules: SeccompRule[];
  defaultAction?: number;
  defaultErrno?: number;
  calls?: (string | number | bigint)[][];
  exec?: string[];
}

/** Runs `calls` in a fresh Node process under the compiled filter (the filter's own process). */
function underFilter(spec: Spec) {
  const json = JSON.stringify({ defaultAction: SECCOMP_RET.ALLOW, ...spec }, (_k, v) =>
    typeof v === 'bigint' ? `${v}n` : v,
  );
  const r = spawnSync(process.execPath, [child, json], { encoding: 'utf8' });
  const lines = r.stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { errno?: number; ret?: string; signal?: string; status?: number });
  return { lines, signal: r.signal, stderr: r.stderr };
}

const U64 = (1n << 64n) - 1n;
/** What libseccomp's comparisons mean, on unsigned 64-bit values. */
function holds(op: SeccompOp, arg: bigint, value: bigint, valueTwo = 0n): boolean {
  switch (op) {
    case 'EQ':
      return arg === value;
    case 'NE':
      return arg !== value;
    case 'LT':
      return arg < value;
    case 'LE':
      return arg <= value;
    case 'GT':
      return arg > value;
    case 'GE':
      return arg >= value;
    case 'MASKED_EQ':
      return (arg & value) === valueTwo;
  }
}

// Around 0x1_00000005: equal low halves with other high halves, and the other way round.
const V = 0x1_0000_0005n;
const ARGS = [
  0n,
  4n,
  5n,
  6n,
  0xffff_ffffn,
  0x1_0000_0000n,
  0x1_0000_0004n,
  V,
  0x1_0000_0006n,
  0x1_ffff_ffffn,
  0x2_0000_0000n,
  0x2_0000_0004n,
  0x2_0000_0005n,
  0x8000_0000_0000_0005n,
  U64,
];

describe('seccomp argument conditions (real kernel)', () => {
  const cases: [SeccompOp, bigint, bigint?][] = [
    ['EQ', V],
    ['NE', V],
    ['LT', V],
    ['LE', V],
    ['GT', V],
    ['GE', V],
    ['MASKED_EQ', 0xf000_000f_0000_000fn, 0x1000_0000_0000_0005n],
    ['MASKED_EQ', 0x0000_0001_0000_00ffn, 0x1_0000_0005n],
  ];
  it.each(cases)('%s %s compares both 32-bit halves of a 64-bit argument', (op, value, valueTwo) => {
    // lseek(-1, offset, SEEK_SET) fails with EBADF when let through; the rule says 77.
    const cond: SeccompCondition = { index: 1, op, value, valueTwo };
    const args = [...ARGS, ...(op === 'MASKED_EQ' ? [0x1000_0000_0000_0005n, 0x1fff_fff0_ffff_fff5n] : [])];
    const { lines, stderr } = underFilter({
      rules: [{ names: ['lseek'], action: SECCOMP_RET.ERRNO, errno: 77, args: [cond] }],
      calls: args.map((a) => ['lseek', U64, a, 0n]),
    });
    expect(stderr).toBe('');
    const got = lines.map((l, i) => `${args[i].toString(16)}:${l.errno}`);
    const want = args.map((a) => `${a.toString(16)}:${holds(op, a, value, valueTwo) ? 77 : EBADF}`);
    expect(got).toEqual(want);
  });

  it('ANDs the conditions of a rule, ORs the rules of a syscall, each with its own errno', () => {
    const { lines } = underFilter({
      rules: [
        {
          names: ['lseek'],
          action: SECCOMP_RET.ERRNO,
          errno: 71,
          args: [
            { index: 0, op: 'EQ', value: U64 },
            { index: 2, op: 'EQ', value: 1n },
          ],
        },
        { names: ['lseek'], action: SECCOMP_RET.ERRNO, errno: 72, args: [{ index: 2, op: 'EQ', value: 2n }] },
        { names: ['getppid'], action: SECCOMP_RET.ERRNO, errno: 74 },
      ],
      calls: [
        ['lseek', U64, 0n, 1n],
        ['lseek', U64 - 1n, 0n, 1n],
        ['lseek', U64, 0n, 2n],
        ['lseek', U64, 0n, 0n],
        ['getppid'],
        ['getpid'],
      ],
    });
    expect(lines.slice(0, 5).map((l) => l.errno)).toEqual([71, EBADF, 72, EBADF, 74]);
    expect(Number(lines[5].ret)).toBeGreaterThan(0);
  });

  it('lets an unconditional rule decide over conditional ones, and leaves out rules with the default action (as runc)', () => {
    const { lines } = underFilter({
      rules: [
        { names: ['lseek'], action: SECCOMP_RET.ALLOW },
        { names: ['lseek'], action: SECCOMP_RET.ERRNO, errno: 81, args: [{ index: 2, op: 'EQ', value: 1n }] },
        { names: ['lseek'], action: SECCOMP_RET.ERRNO, errno: 82, args: [{ index: 2, op: 'EQ', value: 2n }] },
        { names: ['getppid'], action: SECCOMP_RET.LOG, args: [{ index: 0, op: 'EQ', value: 0n }] },
        { names: ['getppid'], action: SECCOMP_RET.ERRNO, errno: 83 },
      ],
      calls: [['lseek', U64, 0n, 0n], ['lseek', U64, 0n, 1n], ['lseek', U64, 0n, 2n], ['getppid']],
    });
    expect(lines.map((l) => l.errno)).toEqual([EBADF, 81, 82, 83]);
  });

  it('refuses x32 syscall numbers on x86_64 with EPERM', () => {
    if (process.arch !== 'x64') return;
    const { lines } = underFilter({ rules: [], calls: [[0x4000_0000 + 39]] });
    expect(lines[0].errno).toBe(1);
  });
});

describe('seccomp actions (real kernel)', () => {
  it('LOG lets the call through, TRACE without a tracer fails it with ENOSYS', () => {
    const { lines } = underFilter({
      rules: [
        { names: ['getpid'], action: SECCOMP_RET.LOG },
        { names: ['getppid'], action: SECCOMP_RET.TRACE, errno: 5 },
      ],
      calls: [['getpid'], ['getppid']],
    });
    expect(Number(lines[0].ret)).toBeGreaterThan(0);
    expect(lines[1].errno).toBe(38);
  });

  it('TRAP and KILL_PROCESS end the process with SIGSYS', () => {
    for (const action of [SECCOMP_RET.TRAP, SECCOMP_RET.KILL_PROCESS]) {
      const r = underFilter({ rules: [{ names: ['getppid'], action }], calls: [['getppid']] });
      expect(r.signal).toBe('SIGSYS');
      expect(r.lines).toEqual([]);
    }
  });

  it('KILL_THREAD kills the calling thread of a program started under the filter', () => {
    const { lines } = underFilter({
      rules: [{ names: ['uname'], action: SECCOMP_RET.KILL_THREAD }],
      exec: ['/bin/busybox', 'uname'],
    });
    expect(lines[0]).toMatchObject({ signal: 'SIGSYS', status: null });
  });
});

describe('seccomp program size', () => {
  it('routes jumps past 255 instructions through trampolines and stays correct', () => {
    // One syscall with 600 conditional rules: every split of the search tree above it jumps
    // further than a conditional jump can reach.
    const many: SeccompRule[] = Array.from({ length: 600 }, (_, i) => ({
      names: ['lseek'],
      action: SECCOMP_RET.ERRNO,
      errno: 100 + (i % 50),
      args: [{ index: 1, op: 'EQ', value: BigInt(i) | (1n << 40n) }],
    }));
    const rules = [...many, { names: ['getppid'], action: SECCOMP_RET.ERRNO, errno: 99 }];
    const program = compileSeccomp(rules, SECCOMP_RET.ALLOW);
    expect(program.length / 8).toBeGreaterThan(2 * 255);
    expect(program.length / 8).toBeLessThanOrEqual(SECCOMP_MAX_INSNS);
    const { lines } = underFilter({
      rules,
      calls: [
        ['lseek', U64, 599n | (1n << 40n), 0n],
        ['lseek', U64, 7n | (1n << 40n), 0n],
        ['lseek', U64, 7n, 0n],
        ['getppid'],
      ],
    });
    expect(lines.map((l) => l.errno)).toEqual([100 + (599 % 50), 107, EBADF, 99]);
  });

  it('refuses a program longer than the kernel takes', () => {
    const rules: SeccompRule[] = Array.from({ length: 900 }, (_, i) => ({
      names: ['lseek'],
      action: SECCOMP_RET.ERRNO,
      args: [{ index: 1, op: 'EQ', value: BigInt(i) }],
    }));
    expect(() => compileSeccomp(rules, SECCOMP_RET.ALLOW)).toThrow("more than the kernel's 4096");
  });

  it('refuses bad values, indexes and comparisons', () => {
    const rule = (c: Partial<SeccompCondition>): SeccompRule[] => [
      { names: ['lseek'], action: SECCOMP_RET.ERRNO, args: [{ index: 0, op: 'EQ', value: 0n, ...c }] },
    ];
    expect(() => compileSeccomp(rule({ index: 6 }), SECCOMP_RET.ALLOW)).toThrow('index 6');
    expect(() => compileSeccomp(rule({ value: 1n << 64n }), SECCOMP_RET.ALLOW)).toThrow('64-bit');
    expect(() => compileSeccomp(rule({ op: 'XX' as SeccompOp }), SECCOMP_RET.ALLOW)).toThrow('comparison');
    expect(() => compileSeccomp([], SECCOMP_RET.ERRNO, 70000)).toThrow('16-bit');
  });
});
