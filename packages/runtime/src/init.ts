// A container's init: PID 1 of the container's new PID namespace, started by Runtime.create.
// It reads the spec from the sync socket (fd 3), builds the container's namespaces and root
// filesystem, says "ready", waits until `start` opens the exec fifo, then becomes the user's
// program (execve) or, with the init annotation, its supervisor.
// Namespaces move only this thread: after unshare everything here is synchronous.
import { closeSync, existsSync, openSync, statSync, writeFileSync } from 'node:fs';
import { ExecError, pathOf, resolveExecutable } from '@corral/pidns';
import {
  chdir,
  dup2,
  MNT,
  MS,
  mount,
  O,
  PR,
  pivotRoot,
  prctl,
  setCloexec,
  setdomainname,
  sethostname,
  setns,
  umount2,
  unshare,
} from '@corral/sys';
import { mountCgroups } from './cgroup-mount.js';
import { beforePivotRoot, beforeProgram, type LifecycleConfig, moveRoot } from './init-lifecycle.js';
import { rootPropagation } from './mount-options.js';
import {
  becomeProgram,
  closeInheritedFds,
  envObject,
  openTerminal,
  SetupError,
  setRlimits,
  setUserAndCapabilities,
  step,
} from './process-setup.js';
import { createDevice, devSymlinks, doMount, ensureWorkdir } from './rootfs.js';
import { DEFAULT_DEVICES, INIT_ANNOTATION, JOINABLE_NAMESPACES, type OciSpec } from './spec.js';
import { execSupervisor, openSupervisorViews, type SupervisorViews } from './supervisor-exec.js';
import { readLineSync, SyncClosedError, writeLineSync } from './sync.js';

// fd 3 unless the runtime passes fds to the program there (--preserve-fds): then after them.
const SYNC_FD = Number(process.env.CORRAL_SYNC_FD || 3);

interface InitConfig extends LifecycleConfig {
  spec: OciSpec;
  /** Fds from 3 on that the program keeps (--preserve-fds). */
  preserveFds?: number;
  /** Replace stdin with /dev/null (the init was started with the caller's stdin). */
  nullStdin: boolean;
  /** Absolute path of the rootfs on the host. */
  rootfs: string;
  /** The exec fifo that `start` opens. */
  fifo: string;
  /** The host's node binary: the --init supervisor runs it again, born inside the container. */
  node: string;
  /** SIGKILL when our parent (the container's keeper) dies: see CreateOptions.dieWithParent. */
  dieWithParent?: boolean;
  /** spec.linux.seccomp compiled by the runtime (base64 BPF), so this cold process need not. */
  seccompProgram?: string;
}

const SIGKILL = 9;

const flagOf = (type: string) => JOINABLE_NAMESPACES.find((n) => n.type === type)?.flag ?? 0;

/** Joins namespaces given by path, then unshares the new ones (pid was made by our parent). */
function enterNamespaces(spec: OciSpec): void {
  const nss = spec.linux?.namespaces ?? [];
  for (const ns of nss) {
    if (ns.type === 'pid' || !ns.path) continue;
    const fd = openSync(ns.path, 'r');
    step(`joining ${ns.type} namespace ${ns.path}`, () => setns(fd, flagOf(ns.type)));
    closeSync(fd);
  }
  let flags = 0;
  for (const ns of nss) if (!ns.path) flags |= flagOf(ns.type);
  // A new cgroup namespace is unshared last: the runtime has already placed us in our cgroup.
  if (flags) step('unshare', () => unshare(flags));
}

function maskPaths(paths: readonly string[]): void {
  for (const p of paths) {
    let st: ReturnType<typeof statSync>;
    try {
      st = statSync(p);
    } catch {
      continue;
    }
    if (st.isDirectory()) step(`masking ${p}`, () => mount('tmpfs', p, 'tmpfs', MS.RDONLY, null));
    else step(`masking ${p}`, () => mount('/dev/null', p, null, MS.BIND));
  }
}

function readonlyPaths(paths: readonly string[]): void {
  for (const p of paths) {
    if (!existsSync(p)) continue;
    step(`making ${p} read-only`, () => {
      mount(p, p, null, MS.BIND | MS.REC);
      mount(null, p, null, MS.REMOUNT | MS.BIND | MS.RDONLY | MS.NOSUID | MS.NODEV | MS.NOEXEC);
    });
  }
}

interface Prepared {
  file: string;
  fifoFd: number;
  /** The terminal master, opened here for the runtime to take with pidfd_getfd. */
  terminalFd: number | null;
  /** With --init: what the supervisor's node needs of the host, opened before pivot_root. */
  views: SupervisorViews | null;
}

function setup(config: InitConfig): Prepared {
  const { spec, rootfs } = config;
  const ownMountNs = (spec.linux?.namespaces ?? []).some((n) => n.type === 'mount' && !n.path);
  enterNamespaces(spec);
  if (!ownMountNs) throw new SetupError('a container needs its own mount namespace');
  // The fifo lives on the host: keep an O_PATH fd to it across pivot_root.
  const fifoPath = openSync(config.fifo, O.PATH | O.CLOEXEC);

  // Nothing mounted from here on may propagate back to the host.
  step('making / private', () => mount(null, '/', null, rootPropagation(spec.linux?.rootfsPropagation)));
  step(`bind-mounting the rootfs ${rootfs}`, () => mount(rootfs, rootfs, null, MS.BIND | MS.REC));
  for (const m of spec.mounts ?? []) {
    if (m.type === 'cgroup') mountCgroups(rootfs, m);
    else doMount(rootfs, m);
  }
  const devices = [...DEFAULT_DEVICES, ...(spec.linux?.devices ?? [])];
  for (const d of devices) createDevice(rootfs, d);
  devSymlinks(rootfs);
  ensureWorkdir(rootfs, spec.process.cwd);

  if (spec.hostname) step('sethostname', () => sethostname(spec.hostname!));
  if (spec.domainname) step('setdomainname', () => setdomainname(spec.domainname!));

  beforePivotRoot(config, SYNC_FD);
  const views =
    spec.annotations?.[INIT_ANNOTATION] === 'true'
      ? step('opening the init supervisor', () => openSupervisorViews(config.node))
      : null;
  if (config.noPivot) moveRoot(rootfs);
  else
    step('pivot_root', () => {
      chdir(rootfs);
      pivotRoot('.', '.');
      umount2('.', MNT.DETACH);
      chdir('/');
    });
  // Before /proc/sys turns read-only.
  for (const [key, value] of Object.entries(spec.linux?.sysctl ?? {})) {
    step(`sysctl ${key}`, () => writeFileSync(`/proc/sys/${key.replace(/\./g, '/')}`, value));
  }
  maskPaths(spec.linux?.maskedPaths ?? []);
  readonlyPaths(spec.linux?.readonlyPaths ?? []);
  if (spec.root.readonly)
    step('making the rootfs read-only', () => mount(null, '/', null, MS.REMOUNT | MS.BIND | MS.RDONLY));
  setRlimits(spec.process.rlimits);

  const env = spec.process.env ?? [];
  const file = resolveExecutable(spec.process.args[0], pathOf(env));
  const terminalFd = spec.process.terminal ? openTerminal(spec.process) : null;
  // Before the credentials change too: a seccomp profile may refuse prctl afterwards.
  if (config.dieWithParent) prctl(PR.SET_PDEATHSIG, SIGKILL);
  setUserAndCapabilities(spec.process, spec.linux?.seccomp, config.seccompProgram);
  // A change of effective uid clears it: set again for a container with a user of its own.
  if (config.dieWithParent) {
    try {
      prctl(PR.SET_PDEATHSIG, SIGKILL);
    } catch {
      // refused by the profile: the engine's reconcile still ends a container left unkept
    }
  }
  step(`changing to the working directory ${spec.process.cwd}`, () => process.chdir(spec.process.cwd));
  if (spec.process.noNewPrivileges) step('no_new_privs', () => prctl(PR.SET_NO_NEW_PRIVS, 1));
  return { file, fifoFd: fifoPath, terminalFd, views };
}

function main(): void {
  setCloexec(SYNC_FD);
  let first: string;
  try {
    first = readLineSync(SYNC_FD);
  } catch (e) {
    // An init started ahead that no container came for (a refused run, a pool shutting down):
    // nothing went wrong that its caller's user should read about.
    if (e instanceof SyncClosedError) process.exit(125);
    throw e;
  }
  const config = JSON.parse(first) as InitConfig;
  if (config.nullStdin) {
    const devnull = openSync('/dev/null', 'r');
    dup2(devnull, 0);
    closeSync(devnull);
  }
  let prepared: Prepared;
  try {
    prepared = setup(config);
  } catch (e) {
    const exitCode = e instanceof ExecError || e instanceof SetupError ? e.exitCode : 125;
    writeLineSync(SYNC_FD, { type: 'error', message: (e as Error).message, exitCode });
    process.exit(exitCode);
  }
  writeLineSync(SYNC_FD, { type: 'ready', terminalFd: prepared.terminalFd });
  // Blocks until `start` opens the fifo for reading.
  const fifo = openSync(`/proc/self/fd/${prepared.fifoFd}`, O.WRONLY | O.CLOEXEC);
  const { spec } = config;
  const env = spec.process.env ?? [];
  beforeProgram(config);
  if (prepared.views) {
    // The supervisor writes the fifo's byte once it has let go of the host: until then
    // `start` does not return, so nothing of the container runs beside it.
    closeInheritedFds();
    execSupervisor(prepared.views, {
      file: prepared.file,
      argv: spec.process.args,
      env: envObject(env),
      cwd: spec.process.cwd,
      readyFd: fifo,
    });
  }
  writeFileSync(fifo, '0');
  becomeProgram(prepared.file, spec.process.args, env, config.preserveFds);
}

// Nothing in the container may ptrace us or open our /proc files while we hold the host's
// root: non-dumpable from here on, and never made dumpable again.
prctl(PR.SET_DUMPABLE, 0);
try {
  main();
} catch (e) {
  process.stderr.write(`corral init: ${(e as Error).message}\n`);
  process.exit(e instanceof ExecError ? e.exitCode : 125);
}
