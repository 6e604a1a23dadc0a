// `run` without a Node init (fast-path.ts says when): the runtime clones itself with
// CLONE_VM | CLONE_VFORK and the container's new namespaces (vforkExec in @corral/sys). The
// child, PID 1 of the new PID namespace, joins the cgroup, builds the container with the
// init's own code (init-setup.ts) and execs the program, while this process's thread waits;
// this process then keeps the container as `run` does. One Node start per container instead
// of two, and no Node thread ever in the container's PID namespace or cgroup.
// The child shares our memory, so /proc/self/exe is our node until it execs: it execs a
// sealed trampoline first (trampolineFd), never the program itself.
import { closeSync, constants, existsSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { join, posix, resolve } from 'node:path';
import { type Cgroup, limitsFromOci, openCgroup, readProcCgroups } from '@corral/cgroups';
import {
  CLONE,
  clearCloexec,
  close,
  dup2,
  errnoName,
  O,
  PR,
  pidfdOpen,
  prctl,
  procStartTime,
  setns,
  TRAMPOLINE_ARGV0,
  trampolineFd,
  unshare,
  vforkExec,
  WAIT,
  waitpid,
} from '@corral/sys';
import { applyDeviceRules, withDefaultDevices } from './devices.js';
import { RuntimeError } from './errors.js';
import { fastRunRefusal } from './fast-path.js';
import { writeCreating } from './half-created.js';
import type { HookState } from './hooks.js';
import { beforeProgram } from './init-lifecycle.js';
import { type InitConfig, setup } from './init-setup.js';
import { withHome } from './passwd.js';
import { closeInheritedFds } from './process-setup.js';
import { precompiledProfile } from './seccomp.js';
import { JOINABLE_NAMESPACES, type OciSpec } from './spec.js';
import { readBundle } from './spec-check.js';
import {
  cgroupsPathOf,
  freezerOf,
  makeStateDir,
  OCI_VERSION,
  type StoredState,
  writeAtomic,
} from './state.js';

export interface FastRunOptions {
  /** Fds 3 .. 3+N-1 of this process that the program gets as the same numbers. */
  preserveFds?: number;
  /** Keep this process's session keyring instead of a new one named after the container. */
  noNewKeyring?: boolean;
  /** The cgroup when the spec names none (as CreateOptions.defaultCgroupsPath). */
  defaultCgroupsPath?: string | null;
  /** Fds of this process for the program's stdin, stdout and stderr (default: this process's 0, 1, 2). */
  stdio?: readonly [number, number, number];
  /**
   * SIGKILL the program when this thread ends (PR_SET_PDEATHSIG, as CreateOptions.dieWithParent):
   * for a keeper, which must never leave a container running that nothing records.
   */
  dieWithParent?: boolean;
  /**
   * The spec's seccomp profile as precompiledProfile compiles it, from a caller that keeps
   * what it compiled (a long-lived front-end compiles each profile once; about 6 ms each here).
   */
  seccompProgram?: string;
  /**
   * The name of an empty cgroup made ahead beside the container's (the same parent, v1: a
   * pool's): renamed into the container's instead of making that (a mkdir in every hierarchy,
   * 5-10 ms here). Left as it is where it cannot be (another parent, v2): its maker removes it.
   */
  parkedCgroup?: string;
}

/** A container that runFast started: its program runs, a child of this process. */
export interface FastRun {
  id: string;
  pid: number;
  /** A pidfd of the program, to signal it without a PID race (closed once reaped). */
  pidfd: number;
  /** The exit code (128 + S when killed by signal S) once the program ended, reaping it; else null. */
  poll(): number | null;
  /** Resolves with the exit code once the program has ended, reaping it (on SIGCHLD). */
  exited(): Promise<number>;
}

/** Waits for `poll` to answer: on SIGCHLD, and every 250 ms for a signal that came before the handler. */
function exitOf(poll: () => number | null): Promise<number> {
  return new Promise((resolveCode) => {
    const check = () => {
      const code = poll();
      if (code === null) return;
      process.off('SIGCHLD', check);
      clearInterval(timer);
      resolveCode(code);
    };
    process.on('SIGCHLD', check);
    const timer = setInterval(check, 250);
    check();
  });
}

const SETUP_FAILED = 125;
const O_RDONLY_CLOEXEC = constants.O_RDONLY | O.CLOEXEC;
const ENOENT = 2;

const flagOf = (type: string) => JOINABLE_NAMESPACES.find((n) => n.type === type)?.flag ?? 0;

/**
 * The clone flags of the spec's new namespaces (the cgroup one is unshared after joining the
 * cgroup), and those joined by path (FAST_JOINABLE), opened here: the child only calls setns.
 */
function namespacesOf(spec: OciSpec): {
  flags: number;
  cgroupNs: boolean;
  joined: { fd: number; flag: number }[];
} {
  let flags = CLONE.NEWPID;
  let cgroupNs = false;
  const joined: { fd: number; flag: number }[] = [];
  try {
    for (const ns of spec.linux?.namespaces ?? []) {
      if (ns.path) {
        if (ns.type !== 'pid')
          joined.push({ fd: openSync(ns.path, O_RDONLY_CLOEXEC), flag: flagOf(ns.type) });
      } else if (ns.type === 'cgroup') cgroupNs = true;
      else if (ns.type !== 'pid') flags |= flagOf(ns.type);
    }
  } catch (e) {
    for (const j of joined) closeSync(j.fd);
    throw new RuntimeError(`opening a namespace to join: ${(e as Error).message}`);
  }
  return { flags, cgroupNs, joined };
}

function makeCgroup(
  cgroupsPath: string,
  own: ReturnType<typeof readProcCgroups>,
  spec: OciSpec,
  parked: string | undefined,
) {
  const cgroup = openCgroup({ path: cgroupsPath, own });
  let made = false;
  try {
    // runc joins a cgroup that is there already (a pod's, made by its caller).
    if (!cgroup.exists()) {
      if (!(parked && tookParked(cgroupsPath, parked, own, cgroup))) cgroup.create();
      made = true;
    }
    // The pids limit too: only the program will count against it (create holds it back
    // until start because of the Node init's threads).
    cgroup.apply(limitsFromOci(spec.linux?.resources));
    applyDeviceRules(cgroup, withDefaultDevices(spec.linux?.resources?.devices));
    return { cgroup, made };
  } catch (e) {
    if (made) cgroup.remove().catch(() => {});
    throw new RuntimeError(`cgroup ${cgroupsPath}: ${(e as Error).message}`);
  }
}

/** Whether the parked cgroup `name` beside `cgroupsPath` became the container's `cgroup`. */
function tookParked(
  cgroupsPath: string,
  name: string,
  own: ReturnType<typeof readProcCgroups>,
  cgroup: Cgroup,
): boolean {
  if (name.includes('/') || name === '.' || name === '..') return false;
  try {
    openCgroup({ path: posix.join(posix.dirname(cgroupsPath), name), own }).renameTo(cgroup);
    return true;
  } catch {
    return false; // another parent, v2, gone: made as without one
  }
}

/**
 * Creates and starts the container of `bundle` in one step, without an init of Node: for
 * specs that fastRunRefusal accepts. Makes this process non-dumpable (the child shares its
 * memory), for good. Throws a RuntimeError (with the exit code runc gives)
 * when setup or the exec fails; nothing of the container is then left.
 */
export async function runFast(
  root: string,
  id: string,
  bundle: string,
  options: FastRunOptions = {},
): Promise<FastRun> {
  root = resolve(root);
  bundle = resolve(bundle);
  const { spec, rootfs } = readBundle(bundle);
  const refusal = fastRunRefusal(spec);
  if (refusal) throw new RuntimeError(`the fast path cannot run this container: ${refusal}`);
  const dir = makeStateDir(root, id);
  const cgroupsPath = cgroupsPathOf(spec, id, options.defaultCgroupsPath);
  let cgroup: Cgroup | undefined;
  let madeCgroup = false;
  let pid = 0;
  try {
    const cgroupOwn = readProcCgroups('self');
    writeCreating(dir, { cgroupsPath, cgroupOwn });
    if (cgroupsPath)
      ({ cgroup, made: madeCgroup } = makeCgroup(cgroupsPath, cgroupOwn, spec, options.parkedCgroup));
    const created = new Date().toISOString();
    const state: HookState = {
      ociVersion: OCI_VERSION,
      id,
      status: 'creating',
      bundle,
      annotations: spec.annotations,
    };
    spec.process.env = withHome(spec.process.env, rootfs, spec.process.user.uid);
    const preserveFds = options.preserveFds ?? 0;
    const config: InitConfig = {
      spec,
      rootfs,
      fifo: '',
      nullStdin: false,
      node: process.execPath,
      preserveFds,
      noNewKeyring: options.noNewKeyring,
      dieWithParent: options.dieWithParent,
      seccompProgram: spec.linux?.seccomp
        ? (options.seccompProgram ?? precompiledProfile(spec.linux.seccomp))
        : undefined,
      state,
    };
    const { flags, cgroupNs, joined } = namespacesOf(spec);
    const trampoline = trampolineFd();
    const out: { failure?: { message: string; exitCode: number } } = {};
    // The child shares our memory: nothing may read it through /proc (dumpable is per mm).
    prctl(PR.SET_DUMPABLE, 0);
    const result = vforkExec(flags, () => {
      try {
        // Written as 0: the kernel would look a PID up in our new PID namespace.
        if (cgroup) cgroup.addProcess('self');
        for (const j of joined) setns(j.fd, j.flag);
        const adj = spec.process.oomScoreAdj;
        if (adj !== undefined) writeFileSync('/proc/self/oom_score_adj', String(adj));
        if (cgroupNs) unshare(CLONE.NEWCGROUP);
        const prepared = setup(config, -1, true);
        beforeProgram(config);
        options.stdio?.forEach((fd, i) => {
          if (fd !== i) dup2(fd, i);
        });
        closeInheritedFds(preserveFds);
        for (let fd = 0; fd < 3 + preserveFds; fd++) clearCloexec(fd);
        // Never exec the program straight from here: see trampolineFd. Through the
        // container's /proc where it has one, so that execve is the only call the seccomp
        // profile must allow (fexecve is execveat, which a profile may leave out).
        const argv = [TRAMPOLINE_ARGV0, prepared.file, ...spec.process.args];
        const envp = spec.process.env ?? [];
        const viaProc = `/proc/self/fd/${trampoline}`;
        return existsSync(viaProc) ? { path: viaProc, argv, envp } : { fd: trampoline, argv, envp };
      } catch (e) {
        const exitCode = (e as { exitCode?: number }).exitCode ?? SETUP_FAILED;
        out.failure = { message: (e as Error).message, exitCode };
        return exitCode;
      }
    });
    for (const j of joined) closeSync(j.fd);
    pid = result.pid;
    if (out.failure || result.execErrno !== null) {
      waitpid(pid, 0);
      pid = 0;
      if (out.failure) throw new RuntimeError(out.failure.message, out.failure.exitCode);
      const errno = result.execErrno as number;
      throw new RuntimeError(
        `exec: "${spec.process.args[0]}": ${errnoName(errno)}`,
        errno === ENOENT ? 127 : 126,
      );
    }
    // Not reaped yet: the program's /proc entry is there even if it has ended already.
    const startTime = procStartTime(pid);
    if (startTime === null) throw new RuntimeError('the container program vanished before it was reaped');
    const pidfd = pidfdOpen(pid);
    const st: StoredState = {
      id,
      bundle,
      rootfs,
      pid,
      startTime,
      created,
      annotations: spec.annotations ?? {},
      cgroupsPath,
      cgroupOwn,
      cgroupDirs: cgroup ? { ...cgroup.dirs } : undefined,
      freezer: cgroup ? freezerOf(cgroup) : undefined,
    };
    writeAtomic(join(dir, 'state.json'), JSON.stringify(st));
    let code: number | null = null;
    const poll = () => {
      if (code !== null) return code;
      const w = waitpid(pid, WAIT.NOHANG);
      if (!w) return null;
      code = w.code;
      close(pidfd);
      return code;
    };
    let exit: Promise<number> | null = null;
    return { id, pid, pidfd, poll, exited: () => (exit ??= exitOf(poll)) };
  } catch (e) {
    if (pid > 0) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
      waitpid(pid, 0);
    }
    if (madeCgroup) await cgroup?.remove().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}
