// Runs the seccomp probe (fixtures/seccomp-probe.c, built static with gcc) as a container's
// program under runc and under corral's runtime, from one OCI config but for the runtime's
// own state, and returns what each saw per probe case.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type OciSeccomp, type OciSpec, Runtime } from '@corral/runtime';
import { syscallNumber } from '@corral/sys';

/** One probe case: a label, a syscall name and its arguments. */
export type ProbeCase = [label: string, name: string, ...args: (number | bigint)[]];

/** A container root with the probe in it, built in `dir`. */
export function probeRootfs(dir: string): string {
  const rootfs = join(dir, 'rootfs');
  for (const d of ['proc', 'dev', 'tmp']) mkdirSync(join(rootfs, d), { recursive: true });
  execFileSync('gcc', [
    '-static',
    '-O2',
    '-o',
    join(rootfs, 'probe'),
    join(__dirname, 'fixtures/seccomp-probe.c'),
  ]);
  return rootfs;
}

/** The probe's arguments: LABEL=NR,A0,... with every number in hex. */
export function probeArgs(cases: readonly ProbeCase[]): string[] {
  const hex = (v: number | bigint) => `0x${BigInt.asUintN(64, BigInt(v)).toString(16)}`;
  return cases.map(
    ([label, name, ...args]) => `${label}=${[syscallNumber(name), ...args].map(hex).join(',')}`,
  );
}

let n = 0;

/** An OCI config running the probe with these capabilities and seccomp profile. */
export function probeSpec(rootfs: string, args: string[], caps: string[], seccomp?: OciSeccomp): OciSpec {
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: 0, gid: 0 },
      args: ['/probe', ...args],
      env: ['PATH=/'],
      cwd: '/',
      capabilities: { bounding: caps, effective: caps, permitted: caps, inheritable: [] },
      noNewPrivileges: false,
    },
    root: { path: rootfs, readonly: true },
    hostname: 'probe',
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'mode=755'] },
    ],
    linux: {
      namespaces: [{ type: 'pid' }, { type: 'mount' }, { type: 'uts' }, { type: 'ipc' }],
      // Relative: beneath the runtime's own cgroup (machine rule); both runtimes remove it.
      cgroupsPath: `corral-seccomp-probe-${process.pid}-${n++}`,
      ...(seccomp ? { seccomp } : {}),
    },
  } as OciSpec;
}

function bundle(dir: string, spec: OciSpec): string {
  const b = join(dir, `bundle-${n++}`);
  mkdirSync(b);
  writeFileSync(join(b, 'config.json'), JSON.stringify(spec, null, 2));
  return b;
}

/** The probe's lines under runc (its state in `dir`). */
export function underRunc(dir: string, spec: OciSpec): string[] {
  const id = `seccomp-probe-${process.pid}-${n++}`;
  const r = spawnSync('runc', ['--root', join(dir, 'runc'), 'run', '--bundle', bundle(dir, spec), id], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 60_000,
  });
  if (r.status !== 0) throw new Error(`runc run: exit ${r.status}: ${r.stderr}`);
  return r.stdout.trim().split('\n');
}

/** The probe's lines under corral's runtime (its state in `dir`). */
export async function underCorral(dir: string, spec: OciSpec): Promise<string[]> {
  const rt = new Runtime({ root: join(dir, 'corral') });
  const id = `probe${n++}`;
  const c = await rt.create(id, bundle(dir, spec), { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  c.stdout?.on('data', (d) => (out += d));
  c.stderr?.on('data', (d) => (err += d));
  try {
    await rt.start(id);
    const status = await c.wait();
    if (status !== 0) throw new Error(`corral runtime: exit ${status}: ${err}`);
  } finally {
    await rt.delete(id, { force: true });
  }
  return out.trim().split('\n');
}

/**
 * The same profile with every errno it returns moved to 1000 + errno, so that a probe's
 * "errno 1001" is the filter's EPERM and never the kernel's.
 */
export function marked(profile: OciSeccomp): OciSeccomp {
  return {
    ...profile,
    defaultErrnoRet: 1000 + (profile.defaultErrnoRet ?? 1),
    syscalls: (profile.syscalls ?? []).map((s) =>
      s.action === 'SCMP_ACT_ERRNO' ? { ...s, errnoRet: 1000 + (s.errnoRet ?? 1) } : s,
    ),
  };
}

/** "LABEL ok|errno N|signal N" as a verdict: allowed, or what the filter did. */
export function verdict(line: string): [string, string] {
  const [label, what, num] = line.split(' ');
  if (what === 'errno' && Number(num) >= 1000) return [label, `denied ${Number(num) - 1000}`];
  if (what === 'signal') return [label, `signal ${num}`];
  return [label, 'allowed'];
}
