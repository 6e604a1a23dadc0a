import {
  compileSeccomp,
  hasSyscall,
  SECCOMP_RET,
  type SeccompCondition,
  type SeccompOp,
  type SeccompRule,
} from '@corral/sys';

/**
 * A condition on a syscall argument. `value` and `valueTwo` are unsigned 64-bit: a number
 * (a safe integer) or, for values past 2^53 that a JSON number cannot carry, a decimal or 0x
 * string.
 */
export interface OciSeccompArg {
  index: number;
  value: number | string;
  valueTwo?: number | string;
  op: string;
}

export interface OciSyscall {
  names: string[];
  action: string;
  errnoRet?: number;
  args?: OciSeccompArg[] | null;
}

/** The OCI spec's linux.seccomp. */
export interface OciSeccomp {
  defaultAction: string;
  defaultErrnoRet?: number;
  architectures?: string[] | null;
  flags?: string[] | null;
  listenerPath?: string;
  syscalls?: OciSyscall[] | null;
}

const ACTIONS: Record<string, number> = {
  SCMP_ACT_ALLOW: SECCOMP_RET.ALLOW,
  SCMP_ACT_ERRNO: SECCOMP_RET.ERRNO,
  SCMP_ACT_KILL: SECCOMP_RET.KILL_THREAD,
  SCMP_ACT_KILL_THREAD: SECCOMP_RET.KILL_THREAD,
  SCMP_ACT_KILL_PROCESS: SECCOMP_RET.KILL_PROCESS,
  SCMP_ACT_TRAP: SECCOMP_RET.TRAP,
  SCMP_ACT_TRACE: SECCOMP_RET.TRACE,
  SCMP_ACT_LOG: SECCOMP_RET.LOG,
};

const OPS: Record<string, SeccompOp> = {
  SCMP_CMP_NE: 'NE',
  SCMP_CMP_LT: 'LT',
  SCMP_CMP_LE: 'LE',
  SCMP_CMP_EQ: 'EQ',
  SCMP_CMP_GE: 'GE',
  SCMP_CMP_GT: 'GT',
  SCMP_CMP_MASKED_EQ: 'MASKED_EQ',
};

/** The architectures a profile may name (the spec's list). */
export const SECCOMP_ARCHES = new Set([
  'SCMP_ARCH_X86',
  'SCMP_ARCH_X86_64',
  'SCMP_ARCH_X32',
  'SCMP_ARCH_ARM',
  'SCMP_ARCH_AARCH64',
  'SCMP_ARCH_MIPS',
  'SCMP_ARCH_MIPS64',
  'SCMP_ARCH_MIPS64N32',
  'SCMP_ARCH_MIPSEL',
  'SCMP_ARCH_MIPSEL64',
  'SCMP_ARCH_MIPSEL64N32',
  'SCMP_ARCH_PPC',
  'SCMP_ARCH_PPC64',
  'SCMP_ARCH_PPC64LE',
  'SCMP_ARCH_S390',
  'SCMP_ARCH_S390X',
  'SCMP_ARCH_PARISC',
  'SCMP_ARCH_PARISC64',
  'SCMP_ARCH_RISCV64',
  'SCMP_ARCH_LOONGARCH64',
  'SCMP_ARCH_M68K',
  'SCMP_ARCH_SH',
  'SCMP_ARCH_SHEB',
]);

// Flags that only add logging or relax a speculation mitigation: a filter loaded without them
// is as strict or stricter. Others change what the filter does and are refused.
const IGNORED_FLAGS = new Set(['SECCOMP_FILTER_FLAG_LOG', 'SECCOMP_FILTER_FLAG_SPEC_ALLOW']);

const fail = (where: string, what: string): never => {
  throw new Error(`seccomp: ${where}: ${what}`);
};

function action(name: unknown, where: string): number {
  const a = typeof name === 'string' ? ACTIONS[name] : undefined;
  if (a === undefined)
    fail(
      where,
      name === 'SCMP_ACT_NOTIFY'
        ? 'SCMP_ACT_NOTIFY (a seccomp agent) is not supported'
        : `unknown action ${JSON.stringify(name)}`,
    );
  return a as number;
}

function errno(value: unknown, where: string): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 0xffff)
    fail(where, `${JSON.stringify(value)} is not an errno (0-65535)`);
  return value as number;
}

/** An unsigned 64-bit value from a safe-integer number or a decimal/0x string. */
export function u64(value: unknown, where: string): bigint {
  let v: bigint | undefined;
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value))
      fail(where, `${value} cannot be carried exactly by a number: write it as a string`);
    v = BigInt(value);
  } else if (typeof value === 'string' && /^(\d+|0x[0-9a-f]+)$/i.test(value)) {
    v = BigInt(value);
  } else if (typeof value === 'bigint') {
    v = value;
  }
  if (v === undefined || v < 0n || v >= 1n << 64n)
    fail(where, `${JSON.stringify(String(value))} is not an unsigned 64-bit value`);
  return v as bigint;
}

function conditions(args: unknown, where: string): SeccompCondition[] {
  if (args === undefined || args === null) return [];
  if (!Array.isArray(args)) return fail(where, 'args must be a list');
  return args.map((arg: OciSeccompArg, i) => {
    const at = `${where}.args[${i}]`;
    if (typeof arg !== 'object' || arg === null) fail(at, 'not an object');
    if (!Number.isInteger(arg.index) || arg.index < 0 || arg.index > 5)
      fail(`${at}.index`, `${JSON.stringify(arg.index)} is not an argument index (0-5)`);
    const op = OPS[arg.op];
    if (!op) fail(`${at}.op`, `unknown comparison ${JSON.stringify(arg.op)}`);
    return {
      index: arg.index,
      op,
      value: u64(arg.value ?? 0, `${at}.value`),
      valueTwo: u64(arg.valueTwo ?? 0, `${at}.valueTwo`),
    };
  });
}

/**
 * The rules of a spec's seccomp profile, checked: an unknown action, comparison, architecture
 * or flag is an error naming where it is. Syscall names this architecture does not have are
 * left out, as runc does (profiles list every architecture's calls).
 */
export function profileRules(profile: OciSeccomp): {
  rules: SeccompRule[];
  defaultAction: number;
  defaultErrno: number;
} {
  if (typeof profile !== 'object' || profile === null) fail('profile', 'not an object');
  const defaultAction = action(profile.defaultAction, 'defaultAction');
  const defaultErrno = errno(profile.defaultErrnoRet, 'defaultErrnoRet') ?? 1;
  for (const a of profile.architectures ?? [])
    if (!SECCOMP_ARCHES.has(a)) fail('architectures', `unknown architecture ${JSON.stringify(a)}`);
  for (const f of profile.flags ?? [])
    if (!IGNORED_FLAGS.has(f)) fail('flags', `${JSON.stringify(f)} is not supported`);
  if (profile.listenerPath) fail('listenerPath', 'seccomp agents are not supported');
  if (profile.syscalls !== undefined && profile.syscalls !== null && !Array.isArray(profile.syscalls))
    fail('syscalls', 'not a list');
  const rules = (profile.syscalls ?? []).map((s, i): SeccompRule => {
    const where = `syscalls[${i}]`;
    if (typeof s !== 'object' || s === null) fail(where, 'not an object');
    if (!Array.isArray(s.names) || !s.names.length || s.names.some((n) => typeof n !== 'string'))
      fail(`${where}.names`, 'a list of syscall names is required');
    return {
      names: s.names.filter(hasSyscall),
      action: action(s.action, `${where}.action`),
      errno: errno(s.errnoRet, `${where}.errnoRet`),
      args: conditions(s.args, where),
    };
  });
  return { rules, defaultAction, defaultErrno };
}

/** Compiles a spec's seccomp profile to a BPF program; unsupported parts are an error. */
export function compileProfile(profile: OciSeccomp): Buffer {
  const { rules, defaultAction, defaultErrno } = profileRules(profile);
  return compileSeccomp(rules, defaultAction, defaultErrno);
}

const compiled = new Map<string, string>();

/**
 * The profile's BPF program (base64) for the init to load as it is: compiled here, once per
 * profile in a long-lived process (a daemon), instead of in each init's cold Node (a third of
 * its set-up). Undefined when it does not compile: the init compiles it and says why.
 */
export function precompiledProfile(profile: OciSeccomp | undefined): string | undefined {
  if (!profile) return undefined;
  const key = JSON.stringify(profile);
  let program = compiled.get(key);
  if (program === undefined) {
    try {
      program = compileProfile(profile).toString('base64');
    } catch {
      return undefined;
    }
    if (compiled.size >= 16) compiled.delete(compiled.keys().next().value as string);
    compiled.set(key, program);
  }
  return program;
}
