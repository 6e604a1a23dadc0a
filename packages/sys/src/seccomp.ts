import { arch } from 'node:process';
import { check, koffi, lazy, libc, namedType } from './libc.js';
import { Assembler, type Insn, JEQ, JGE, JGT } from './seccomp-bpf.js';
import { syscallTable } from './syscall-table.js';

export { MAX_INSNS as SECCOMP_MAX_INSNS } from './seccomp-bpf.js';

const AUDIT_ARCH: Record<string, number> = { x64: 0xc000003e, arm64: 0xc00000b7 };

/** What a filter does with a syscall (linux/seccomp.h). */
export const SECCOMP_RET = {
  KILL_PROCESS: 0x80000000,
  KILL_THREAD: 0,
  TRAP: 0x00030000,
  ERRNO: 0x00050000,
  TRACE: 0x7ff00000,
  LOG: 0x7ffc0000,
  ALLOW: 0x7fff0000,
} as const;

/** libseccomp's comparisons (SCMP_CMP_*), on the whole 64-bit argument. */
export type SeccompOp = 'NE' | 'LT' | 'LE' | 'EQ' | 'GE' | 'GT' | 'MASKED_EQ';

/**
 * One condition on argument `index` (0-5): `arg OP value`, or for MASKED_EQ
 * `(arg & value) == valueTwo`, as libseccomp and the OCI spec have it.
 */
export interface SeccompCondition {
  index: number;
  op: SeccompOp;
  value: bigint;
  valueTwo?: bigint;
}

/**
 * One rule: these syscalls get this action when every condition holds (none: always). For
 * ERRNO, `errno` is the error they fail with; for TRACE, the value the tracer sees.
 */
export interface SeccompRule {
  names: string[];
  action: number;
  errno?: number;
  args?: SeccompCondition[];
}

/** True when corral knows the syscall's number on this architecture. */
export function hasSyscall(name: string): boolean {
  return syscallTable(arch)?.get(name) !== undefined;
}

/** The number of a syscall on this architecture, or an error naming it. */
export function syscallNumber(name: string): number {
  const n = syscallTable(arch)?.get(name);
  if (n === undefined) throw new TypeError(`seccomp: unknown syscall ${name} on ${arch}`);
  return n;
}

/** The filter's return value for an action and its data (errno for ERRNO, message for TRACE). */
function retValue(action: number, data = 1): number {
  if (action === SECCOMP_RET.ERRNO || action === SECCOMP_RET.TRACE) {
    if (!Number.isInteger(data) || data < 0 || data > 0xffff)
      throw new RangeError(`seccomp: errno ${data} is not a 16-bit value`);
    return (action | data) >>> 0;
  }
  if (!Object.values(SECCOMP_RET).includes(action as never))
    throw new RangeError(`seccomp: unknown action 0x${action.toString(16)}`);
  return action >>> 0;
}

// struct seccomp_data: nr, arch, instruction_pointer, then six 64-bit arguments. Both
// architectures corral filters for are little-endian: the low half of an argument comes first.
const NR = 0;
const ARCH = 4;
const argLo = (i: number) => 16 + 8 * i;
const argHi = (i: number) => 16 + 8 * i + 4;
const X32_SYSCALL_BIT = 0x40000000;
const U64 = (1n << 64n) - 1n;

const hi = (v: bigint) => Number((v >> 32n) & 0xffffffffn);
const lo = (v: bigint) => Number(v & 0xffffffffn);

/**
 * One condition as code that falls through when it holds and jumps to `fail` when not. The
 * high halves decide unless they are equal, then the low halves do (libseccomp's way).
 */
function condition(a: Assembler, c: SeccompCondition, fail: string): void {
  if (!Number.isInteger(c.index) || c.index < 0 || c.index > 5)
    throw new RangeError(`seccomp: argument index ${c.index} is not 0-5`);
  for (const v of [c.value, c.valueTwo ?? 0n])
    if (typeof v !== 'bigint' || v < 0n || v > U64)
      throw new RangeError(`seccomp: ${String(v)} is not an unsigned 64-bit value`);
  const v = c.value;
  const ok = a.label('ok');
  const ldHi: Insn = { ld: argHi(c.index) };
  const ldLo: Insn = { ld: argLo(c.index) };
  switch (c.op) {
    case 'EQ':
      a.put(ldHi, { jmp: JEQ, k: hi(v), jt: null, jf: fail });
      a.put(ldLo, { jmp: JEQ, k: lo(v), jt: null, jf: fail });
      return;
    case 'NE':
      a.put(ldHi, { jmp: JEQ, k: hi(v), jt: null, jf: ok });
      a.put(ldLo, { jmp: JEQ, k: lo(v), jt: fail, jf: null });
      break;
    case 'GT':
    case 'GE':
      a.put(ldHi, { jmp: JGT, k: hi(v), jt: ok, jf: null }, { jmp: JEQ, k: hi(v), jt: null, jf: fail });
      a.put(ldLo, { jmp: c.op === 'GT' ? JGT : JGE, k: lo(v), jt: null, jf: fail });
      break;
    case 'LT':
    case 'LE':
      a.put(ldHi, { jmp: JGT, k: hi(v), jt: fail, jf: null }, { jmp: JEQ, k: hi(v), jt: null, jf: ok });
      a.put(ldLo, { jmp: c.op === 'LT' ? JGE : JGT, k: lo(v), jt: fail, jf: null });
      break;
    case 'MASKED_EQ': {
      const d = c.valueTwo ?? 0n;
      a.put(ldHi, { and: hi(v) }, { jmp: JEQ, k: hi(d), jt: null, jf: fail });
      a.put(ldLo, { and: lo(v) }, { jmp: JEQ, k: lo(d), jt: null, jf: fail });
      return;
    }
    default:
      throw new RangeError(`seccomp: unknown comparison ${String(c.op)}`);
  }
  a.put({ label: ok });
}

/**
 * The rules of one syscall, resolved as runc and libseccomp do: a rule with the default action
 * is left out, the first unconditional rule decides alone, else the conditional rules are
 * tried in order (libseccomp leaves the order of overlapping ones with different actions to
 * its own tree; corral takes the profile's).
 */
interface Entry {
  nr: number;
  conditional: { args: SeccompCondition[]; ret: number }[];
  always?: number;
}

function entries(rules: readonly SeccompRule[], def: number): Entry[] {
  const byNr = new Map<number, Entry>();
  for (const rule of rules) {
    const ret = retValue(rule.action, rule.errno ?? 1);
    if (ret === def) continue;
    for (const name of rule.names) {
      const nr = syscallNumber(name);
      const e = byNr.get(nr) ?? { nr, conditional: [] };
      byNr.set(nr, e);
      if (rule.args?.length) e.conditional.push({ args: rule.args, ret });
      else e.always ??= ret;
    }
  }
  for (const e of byNr.values()) if (e.always !== undefined) e.conditional = [];
  return [...byNr.values()].sort((x, y) => x.nr - y.nr);
}

const LEAF = 8;

/**
 * A binary search over the syscall numbers (A holds nr): JGE splits the sorted range in two
 * until a leaf of a few JEQs is left. A leaf's returns and argument checks follow it, so jumps
 * stay short; only the upper splits jump far.
 */
function tree(a: Assembler, list: Entry[], def: number): void {
  if (list.length > LEAF) {
    const mid = list.length >> 1;
    const right = a.label('ge');
    a.put({ jmp: JGE, k: list[mid].nr, jt: right, jf: null });
    tree(a, list.slice(0, mid), def);
    a.put({ label: right });
    tree(a, list.slice(mid), def);
    return;
  }
  const rets = new Map<number, string>();
  const bodies: [string, Entry][] = [];
  for (const e of list) {
    let to: string;
    if (e.conditional.length) {
      to = a.label(`nr${e.nr}`);
      bodies.push([to, e]);
    } else {
      const ret = e.always ?? def;
      to = rets.get(ret) ?? a.label('ret');
      rets.set(ret, to);
    }
    a.put({ jmp: JEQ, k: e.nr, jt: to, jf: null });
  }
  a.put({ ret: def });
  for (const [ret, label] of rets) a.put({ label }, { ret });
  for (const [label, e] of bodies) {
    a.put({ label });
    for (const rule of e.conditional) {
      const next = a.label('next');
      for (const c of rule.args) condition(a, c, next);
      a.put({ ret: rule.ret }, { label: next });
    }
    a.put({ ret: e.always ?? def });
  }
}

/**
 * Compiles rules into a classic BPF seccomp program. A wrong architecture is killed (a syscall
 * number means something else there), x32 calls on x86_64 fail with EPERM, each named syscall
 * gets the action its rules give (see Entry), everything else `defaultAction`. Conditions
 * compare the whole 64-bit argument, one 32-bit half at a time. Longer than the kernel's 4096
 * instructions is an error.
 */
export function compileSeccomp(
  rules: readonly SeccompRule[],
  defaultAction: number,
  defaultErrno = 1,
): Buffer {
  const audit = AUDIT_ARCH[arch];
  if (audit === undefined) throw new Error(`seccomp: no filter support on ${arch}`);
  const def = retValue(defaultAction, defaultErrno);
  const list = entries(rules, def);
  const a = new Assembler();
  const badArch = a.label('bad-arch');
  a.put({ ld: ARCH }, { jmp: JEQ, k: audit, jt: null, jf: badArch }, { ld: NR });
  if (arch === 'x64') {
    const x32 = a.label('x32');
    a.put({ jmp: JGE, k: X32_SYSCALL_BIT, jt: x32, jf: null });
    tree(a, list, def);
    a.put({ label: x32 }, { ret: retValue(SECCOMP_RET.ERRNO, 1) });
  } else {
    tree(a, list, def);
  }
  a.put({ label: badArch }, { ret: SECCOMP_RET.KILL_PROCESS });
  return a.assemble();
}

const seccompFn = lazy(() => {
  namedType('corral_sock_fprog', () =>
    koffi.struct('corral_sock_fprog', { len: 'uint16', filter: 'void *' }),
  );
  return { prctl: libc.func('int prctl(int option, unsigned long mode, corral_sock_fprog *prog)') };
});

/**
 * Installs a compiled filter on the calling thread and, through fork and exec, on everything
 * it starts. Needs CAP_SYS_ADMIN or no_new_privs. It cannot be removed.
 */
export function loadSeccompFilter(program: Buffer): void {
  check(
    'prctl',
    seccompFn.prctl(22 /* PR_SET_SECCOMP */, 2 /* SECCOMP_MODE_FILTER */, {
      len: program.length / 8,
      filter: program,
    }),
    ['PR_SET_SECCOMP'],
  );
}
