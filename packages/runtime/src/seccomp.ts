import { compileSeccomp, SECCOMP_RET, type SeccompRule } from '@corral/sys';

/** The OCI spec's linux.seccomp, without argument conditions (not supported yet). */
export interface OciSeccomp {
  defaultAction: string;
  defaultErrnoRet?: number;
  architectures?: string[];
  syscalls?: { names: string[]; action: string; errnoRet?: number; args?: unknown[] }[];
}

const ACTIONS: Record<string, number> = {
  SCMP_ACT_ALLOW: SECCOMP_RET.ALLOW,
  SCMP_ACT_ERRNO: SECCOMP_RET.ERRNO,
  SCMP_ACT_KILL: SECCOMP_RET.KILL_THREAD,
  SCMP_ACT_KILL_THREAD: SECCOMP_RET.KILL_THREAD,
  SCMP_ACT_KILL_PROCESS: SECCOMP_RET.KILL_PROCESS,
  SCMP_ACT_TRAP: SECCOMP_RET.TRAP,
  SCMP_ACT_LOG: SECCOMP_RET.LOG,
};

function action(name: string): number {
  const a = ACTIONS[name];
  if (a === undefined) throw new Error(`seccomp: unsupported action ${name}`);
  return a;
}

/** Compiles a spec's seccomp profile to a BPF program; unsupported parts are an error. */
export function compileProfile(profile: OciSeccomp): Buffer {
  const rules: SeccompRule[] = (profile.syscalls ?? []).map((s) => {
    if (s.args?.length)
      throw new Error(`seccomp: argument conditions (for ${s.names.join(', ')}) are not supported yet`);
    return { names: s.names, action: action(s.action), errno: s.errnoRet };
  });
  return compileSeccomp(rules, action(profile.defaultAction), profile.defaultErrnoRet ?? 1);
}
