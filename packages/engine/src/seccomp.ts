// Seccomp profiles in Docker's format (moby/profiles/seccomp): the OCI profile plus rules that
// apply only with some capabilities, on some architectures or from some kernel version on.
// Resolving one against a container gives the OCI linux.seccomp the runtime compiles.
import { readFileSync, statSync } from 'node:fs';
import { release } from 'node:os';
import { resolve } from 'node:path';
import { compileProfile, type OciSeccomp, type OciSeccompArg, type OciSyscall } from '@corral/runtime';
import { EngineError } from './errors.js';

/** When a rule applies: every listed capability held, the architecture listed, a kernel this new. */
export interface DockerSeccompFilter {
  caps?: string[] | null;
  arches?: string[] | null;
  /** `<kernel>.<major>`, e.g. `4.8`. */
  minKernel?: string | null;
}

export interface DockerSyscall {
  names?: string[] | null;
  /** The one-name form of older profiles. */
  name?: string;
  action: string;
  errnoRet?: number;
  args?: OciSeccompArg[] | null;
  comment?: string;
  includes?: DockerSeccompFilter | null;
  excludes?: DockerSeccompFilter | null;
}

export interface DockerSeccompProfile {
  defaultAction: string;
  defaultErrnoRet?: number;
  architectures?: string[] | null;
  /** The native architecture's entry adds it and its sub-architectures to `architectures`. */
  archMap?: { architecture: string; subArchitectures?: string[] | null }[] | null;
  flags?: string[] | null;
  listenerPath?: string;
  syscalls?: DockerSyscall[] | null;
}

/** Node's architecture names to libseccomp's (the names `arches` filters use), and its SCMP_ARCH. */
const ARCHES: Record<string, [string, string]> = {
  x64: ['amd64', 'SCMP_ARCH_X86_64'],
  arm64: ['arm64', 'SCMP_ARCH_AARCH64'],
  ia32: ['x86', 'SCMP_ARCH_X86'],
  arm: ['arm', 'SCMP_ARCH_ARM'],
  ppc64: ['ppc64le', 'SCMP_ARCH_PPC64LE'],
  s390x: ['s390x', 'SCMP_ARCH_S390X'],
  riscv64: ['riscv64', 'SCMP_ARCH_RISCV64'],
  loong64: ['loongarch64', 'SCMP_ARCH_LOONGARCH64'],
  mips64el: ['mipsel64', 'SCMP_ARCH_MIPSEL64'],
};

/** Where a profile is resolved: the container's bounding set, the machine's arch and kernel. */
export interface SeccompTarget {
  caps: readonly string[];
  arch?: string;
  kernel?: string;
}

class ProfileError extends Error {}
const bad = (where: string, what: string): never => {
  throw new ProfileError(`${where}: ${what}`);
};

const stringList = (v: unknown, where: string): string[] => {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || v.some((s) => typeof s !== 'string')) bad(where, 'must be a list of strings');
  return v as string[];
};

/** `4.8`-style versions compared as numbers; the kernel's release suffix is ignored. */
function kernelAtLeast(min: unknown, kernel: string, where: string): boolean {
  const m = typeof min === 'string' ? /^(\d+)\.(\d+)$/.exec(min) : null;
  if (!m) return bad(where, `${JSON.stringify(min)} is not a kernel version like "4.8"`);
  const [maj = 0, minor = 0] = (/^(\d+)\.(\d+)/.exec(kernel) ?? []).slice(1).map(Number);
  return maj > Number(m[1]) || (maj === Number(m[1]) && minor >= Number(m[2]));
}

/** Docker's rule: excluded if any excluded cap is held or the arch is excluded; included only if all hold. */
function applies(s: DockerSyscall, where: string, t: Required<SeccompTarget>, arch: string): boolean {
  for (const [key, filter] of [
    ['excludes', s.excludes],
    ['includes', s.includes],
  ] as const) {
    if (filter === undefined || filter === null) continue;
    if (typeof filter !== 'object') bad(`${where}.${key}`, 'must be an object');
    const arches = stringList(filter.arches, `${where}.${key}.arches`);
    const caps = stringList(filter.caps, `${where}.${key}.caps`);
    const minKernel =
      filter.minKernel === undefined || filter.minKernel === null || filter.minKernel === ''
        ? undefined
        : kernelAtLeast(filter.minKernel, t.kernel, `${where}.${key}.minKernel`);
    if (key === 'excludes') {
      if (arches.includes(arch) || caps.some((c) => t.caps.includes(c)) || minKernel === true) return false;
    } else {
      if (arches.length && !arches.includes(arch)) return false;
      if (!caps.every((c) => t.caps.includes(c)) || minKernel === false) return false;
    }
  }
  return true;
}

/**
 * A Docker-format profile resolved for one container, as moby does it: the native entry of
 * `archMap` becomes `architectures`, each rule is kept or dropped by its `includes` and
 * `excludes`, `name` becomes `names`. A profile with no default action and no rules means no
 * filter (undefined), as in Docker. Malformed input is an error naming where.
 */
export function resolveSeccompProfile(
  profile: DockerSeccompProfile,
  target: SeccompTarget,
): OciSeccomp | undefined {
  const t = { arch: process.arch, kernel: release(), ...target };
  if (typeof profile !== 'object' || profile === null || Array.isArray(profile))
    bad('profile', 'must be a JSON object');
  const syscalls = profile.syscalls ?? [];
  if (!Array.isArray(syscalls)) bad('syscalls', 'must be a list');
  if (!profile.defaultAction && !syscalls.length) return undefined;
  if (typeof profile.defaultAction !== 'string') bad('defaultAction', 'must be a string');
  const [arch, scmpArch] = ARCHES[t.arch] ?? [t.arch, ''];
  const architectures = stringList(profile.architectures, 'architectures');
  const archMap = profile.archMap ?? [];
  if (!Array.isArray(archMap)) bad('archMap', 'must be a list');
  if (architectures.length && archMap.length)
    bad('archMap', "both 'architectures' and 'archMap' are given: use one");
  archMap.forEach((entry, i) => {
    if (typeof entry !== 'object' || entry === null || typeof entry.architecture !== 'string')
      bad(`archMap[${i}]`, 'needs an "architecture"');
    const subs = stringList(entry.subArchitectures, `archMap[${i}].subArchitectures`);
    if (entry.architecture === scmpArch) architectures.push(entry.architecture, ...subs);
  });
  const out: OciSyscall[] = [];
  syscalls.forEach((s, i) => {
    const where = `syscalls[${i}]`;
    if (typeof s !== 'object' || s === null) bad(where, 'must be an object');
    let names = stringList(s.names, `${where}.names`);
    if (s.name !== undefined && s.name !== '') {
      if (names.length) bad(where, "both 'name' and 'names' are given: use one");
      if (typeof s.name !== 'string') bad(`${where}.name`, 'must be a string');
      names = [s.name];
    }
    if (!applies(s, where, t, arch)) return;
    out.push({
      names,
      action: s.action,
      ...(s.errnoRet !== undefined && s.errnoRet !== null ? { errnoRet: s.errnoRet } : {}),
      ...(s.args?.length ? { args: s.args } : {}),
    });
  });
  return {
    defaultAction: profile.defaultAction,
    ...(profile.defaultErrnoRet !== undefined ? { defaultErrnoRet: profile.defaultErrnoRet } : {}),
    ...(architectures.length ? { architectures } : {}),
    ...(profile.flags?.length ? { flags: profile.flags } : {}),
    ...(profile.listenerPath ? { listenerPath: profile.listenerPath } : {}),
    syscalls: out,
  };
}

/**
 * JSON.parse, except that integers a number cannot carry exactly (past 2^53, as seccomp
 * values may be) stay strings with their exact digits.
 */
export function parseJsonExact(text: string): unknown {
  const number = /-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
  let out = '';
  let last = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      for (i++; i < text.length && text[i] !== '"'; i++) if (text[i] === '\\') i++;
    } else if (c === '-' || (c >= '0' && c <= '9')) {
      number.lastIndex = i;
      const tok = number.exec(text)?.[0] ?? c;
      if (/^-?\d+$/.test(tok) && !Number.isSafeInteger(Number(tok))) {
        out += `${text.slice(last, i)}"${tok}"`;
        last = i + tok.length;
      }
      i += tok.length - 1;
    }
  }
  return JSON.parse(out + text.slice(last));
}

/** The largest profile file read (Docker's default profile is about 20 KiB). */
export const MAX_PROFILE_BYTES = 4 << 20;

/**
 * Reads a Docker-format profile file and resolves it for a container: bad JSON, a malformed
 * profile, or one the runtime cannot compile is an EngineError (exit 125) naming the file.
 */
export function loadSeccompProfile(file: string, target: SeccompTarget): OciSeccomp | undefined {
  const path = resolve(file);
  const fail = (what: string): never => {
    throw new EngineError('InvalidArgument', `seccomp profile ${path}: ${what}`);
  };
  let text = '';
  try {
    const st = statSync(path);
    if (!st.isFile()) fail('not a regular file');
    if (st.size > MAX_PROFILE_BYTES) fail(`larger than ${MAX_PROFILE_BYTES} bytes`);
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if (e instanceof EngineError) throw e;
    fail((e as Error).message);
  }
  let profile: DockerSeccompProfile;
  try {
    profile = parseJsonExact(text) as DockerSeccompProfile;
  } catch (e) {
    return fail(`not valid JSON: ${(e as Error).message}`);
  }
  return checkedProfile(profile, target, fail);
}

/** Resolves and compiles a profile once, so that what is stored will load at start. */
export function checkedProfile(
  profile: DockerSeccompProfile,
  target: SeccompTarget,
  fail: (what: string) => never,
): OciSeccomp | undefined {
  try {
    const resolved = resolveSeccompProfile(profile, target);
    if (resolved) compileProfile(resolved);
    return resolved;
  } catch (e) {
    if (e instanceof ProfileError) return fail(e.message);
    return fail((e as Error).message.replace(/^seccomp: /, ''));
  }
}

/**
 * A profile given as its JSON text (the Engine API's SecurityOpt `seccomp=<JSON>`), or already
 * parsed, resolved for a container like loadSeccompProfile's file.
 */
export function inlineSeccompProfile(
  profile: string | DockerSeccompProfile,
  target: SeccompTarget,
): OciSeccomp | undefined {
  const fail = (what: string): never => {
    throw new EngineError('InvalidArgument', `seccomp profile (inline): ${what}`);
  };
  if (typeof profile !== 'string') return checkedProfile(profile, target, fail);
  if (Buffer.byteLength(profile) > MAX_PROFILE_BYTES) fail(`larger than ${MAX_PROFILE_BYTES} bytes`);
  let parsed: DockerSeccompProfile;
  try {
    parsed = parseJsonExact(profile) as DockerSeccompProfile;
  } catch (e) {
    return fail(`not valid JSON: ${(e as Error).message}`);
  }
  return checkedProfile(parsed, target, fail);
}

/**
 * A container's seccomp as asked at create: Docker's default profile, none, or a profile in
 * Docker's format, inline (`profile`: its JSON text or object) or in a file this process reads.
 */
export type SeccompChoice =
  | 'default'
  | 'unconfined'
  | { file: string }
  | { profile: string | DockerSeccompProfile };

/** The record's seccomp fields for a create option: a profile is read, checked and resolved now. */
export function seccompOption(
  option: SeccompChoice | undefined,
  caps: readonly string[],
): { seccomp: 'default' | 'unconfined' | 'custom'; seccompProfile?: OciSeccomp } {
  if (option === undefined || option === 'default') return { seccomp: 'default' };
  if (option === 'unconfined') return { seccomp: 'unconfined' };
  const seccompProfile =
    'file' in option
      ? loadSeccompProfile(option.file, { caps })
      : inlineSeccompProfile(option.profile, { caps });
  return seccompProfile ? { seccomp: 'custom', seccompProfile } : { seccomp: 'unconfined' };
}
