import { arch } from 'node:process';
import { check, koffi, libc, NR_COMMON } from './libc.js';

/**
 * Syscall numbers by name for the filters corral writes: the ones a container is denied by
 * default, and others a profile may name. A name missing for this architecture is an error.
 */
const SYSCALLS: Record<string, Record<string, number>> = {
  x64: {
    acct: 163,
    add_key: 248,
    bpf: 321,
    clock_adjtime: 305,
    clock_settime: 227,
    create_module: 174,
    delete_module: 176,
    finit_module: 313,
    get_kernel_syms: 177,
    init_module: 175,
    ioperm: 173,
    iopl: 172,
    kcmp: 312,
    kexec_file_load: 320,
    kexec_load: 246,
    keyctl: 250,
    lookup_dcookie: 212,
    mount: 165,
    name_to_handle_at: 303,
    nfsservctl: 180,
    open_by_handle_at: 304,
    perf_event_open: 298,
    pivot_root: 155,
    process_vm_readv: 310,
    process_vm_writev: 311,
    ptrace: 101,
    query_module: 178,
    quotactl: 179,
    reboot: 169,
    request_key: 249,
    settimeofday: 164,
    swapoff: 168,
    swapon: 167,
    sysfs: 139,
    _sysctl: 156,
    umount2: 166,
    unshare: 272,
    setns: 308,
    uselib: 134,
    userfaultfd: 323,
    ustat: 136,
    ...NR_COMMON,
    chmod: 90,
    getpid: 39,
    mkdir: 83,
  },
  arm64: {
    acct: 89,
    add_key: 217,
    bpf: 280,
    clock_adjtime: 266,
    clock_settime: 112,
    delete_module: 106,
    finit_module: 273,
    init_module: 105,
    kcmp: 272,
    kexec_file_load: 294,
    kexec_load: 104,
    keyctl: 219,
    lookup_dcookie: 18,
    mount: 40,
    name_to_handle_at: 264,
    nfsservctl: 42,
    open_by_handle_at: 265,
    perf_event_open: 241,
    pivot_root: 41,
    process_vm_readv: 270,
    process_vm_writev: 271,
    ptrace: 117,
    quotactl: 60,
    reboot: 142,
    request_key: 218,
    settimeofday: 170,
    swapoff: 225,
    swapon: 224,
    umount2: 39,
    unshare: 97,
    setns: 268,
    userfaultfd: 282,
    ...NR_COMMON,
    getpid: 172,
    mkdirat: 34,
  },
};

const AUDIT_ARCH: Record<string, number> = { x64: 0xc000003e, arm64: 0xc00000b7 };

/** What a filter does with a syscall (linux/seccomp.h). */
export const SECCOMP_RET = {
  KILL_PROCESS: 0x80000000,
  KILL_THREAD: 0,
  TRAP: 0x00030000,
  ERRNO: 0x00050000,
  LOG: 0x7ffc0000,
  ALLOW: 0x7fff0000,
} as const;

/** One rule: these syscalls get this action (for ERRNO, the errno they fail with). */
export interface SeccompRule {
  names: string[];
  action: number;
  errno?: number;
}

/** True when corral knows the syscall's number on this architecture. */
export function hasSyscall(name: string): boolean {
  return SYSCALLS[arch]?.[name] !== undefined;
}

/** The number of a syscall on this architecture, or an error naming it. */
export function syscallNumber(name: string): number {
  const n = SYSCALLS[arch]?.[name];
  if (n === undefined) throw new TypeError(`seccomp: unknown syscall ${name} on ${arch}`);
  return n;
}

// Classic BPF opcodes (linux/filter.h).
const LD_W_ABS = 0x20;
const JEQ_K = 0x15;
const JGE_K = 0x35;
const RET_K = 0x06;
const X32_SYSCALL_BIT = 0x40000000;

/**
 * Compiles rules into a classic BPF seccomp program: a wrong architecture is killed (a
 * syscall number means something else there), x32 calls on x86_64 fail with ENOSYS-like
 * EPERM, each named syscall gets its rule's action, everything else `defaultAction`.
 */
export function compileSeccomp(
  rules: readonly SeccompRule[],
  defaultAction: number,
  defaultErrno = 1,
): Buffer {
  const insns: [number, number, number, number][] = [];
  const ret = (action: number, errno = 1) =>
    insns.push([
      RET_K,
      0,
      0,
      action === SECCOMP_RET.ERRNO ? (action | (errno & 0xffff)) >>> 0 : action >>> 0,
    ]);
  const audit = AUDIT_ARCH[arch];
  if (audit === undefined) throw new Error(`seccomp: no filter support on ${arch}`);
  insns.push([LD_W_ABS, 0, 0, 4]); // seccomp_data.arch
  insns.push([JEQ_K, 1, 0, audit]);
  ret(SECCOMP_RET.KILL_PROCESS);
  insns.push([LD_W_ABS, 0, 0, 0]); // seccomp_data.nr
  if (arch === 'x64') {
    insns.push([JGE_K, 0, 1, X32_SYSCALL_BIT]);
    ret(SECCOMP_RET.ERRNO, 1);
  }
  for (const rule of rules) {
    for (const name of rule.names) {
      insns.push([JEQ_K, 0, 1, syscallNumber(name)]);
      ret(rule.action, rule.errno ?? 1);
    }
  }
  ret(defaultAction, defaultErrno);
  const buf = Buffer.alloc(insns.length * 8);
  insns.forEach(([code, jt, jf, k], i) => {
    buf.writeUInt16LE(code, i * 8);
    buf.writeUInt8(jt, i * 8 + 2);
    buf.writeUInt8(jf, i * 8 + 3);
    buf.writeUInt32LE(k, i * 8 + 4);
  });
  return buf;
}

koffi.struct('corral_sock_fprog', { len: 'uint16', filter: 'void *' });
const prctlSeccomp = libc.func('int prctl(int option, unsigned long mode, corral_sock_fprog *prog)');

/**
 * Installs a compiled filter on the calling thread and, through fork and exec, on everything
 * it starts. Needs CAP_SYS_ADMIN or no_new_privs. It cannot be removed.
 */
export function loadSeccompFilter(program: Buffer): void {
  check(
    'prctl',
    prctlSeccomp(22 /* PR_SET_SECCOMP */, 2 /* SECCOMP_MODE_FILTER */, {
      len: program.length / 8,
      filter: program,
    }),
    ['PR_SET_SECCOMP'],
  );
}
