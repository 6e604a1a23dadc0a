// What a container's init does to build the container around itself, from its namespaces to
// its user: shared by the Node init (init.ts) and `run`'s vfork child (fast-run.ts), which
// runs it in a clone of the runtime that shares its memory. Synchronous, on one thread.
// The vfork child may only make syscalls on its own thread: the koffi calls here, and Node's
// synchronous fs calls (libuv runs those on the calling thread, without its loop or pool);
// nothing asynchronous, no process.chdir (its cache is the parent's too).
import { closeSync, existsSync, openSync, statSync, writeFileSync } from 'node:fs';
import { pathOf, resolveExecutable } from '@corral/pidns';
import {
  chdir,
  MNT,
  MS,
  mount,
  O,
  PR,
  pivotRoot,
  prctl,
  setdomainname,
  sethostname,
  setns,
  umount2,
  unshare,
} from '@corral/sys';
import { mountCgroups } from './cgroup-mount.js';
import { beforePivotRoot, type LifecycleConfig, moveRoot } from './init-lifecycle.js';
import { rootPropagation } from './mount-options.js';
import { openTerminal, SetupError, setRlimits, setUserAndCapabilities, step } from './process-setup.js';
import { createDevice, devSymlinks, doMount, ensureWorkdir } from './rootfs.js';
import { DEFAULT_DEVICES, INIT_ANNOTATION, JOINABLE_NAMESPACES, type OciSpec } from './spec.js';
import { openSupervisorViews, type SupervisorViews } from './supervisor-exec.js';

export interface InitConfig extends LifecycleConfig {
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

export interface Prepared {
  file: string;
  fifoFd: number;
  /** The terminal master, opened here for the runtime to take with pidfd_getfd. */
  terminalFd: number | null;
  /** With --init: what the supervisor's node needs of the host, opened before pivot_root. */
  views: SupervisorViews | null;
}

/**
 * Builds the container around the calling thread. `fast`: in run's vfork child, which has
 * no exec fifo (its program runs at once), is already in its new namespaces but for those
 * joined by path and the cgroup one, and must change its ids with raw syscalls.
 */
export function setup(config: InitConfig, syncFd: number, fast = false): Prepared {
  const { spec, rootfs } = config;
  const ownMountNs = (spec.linux?.namespaces ?? []).some((n) => n.type === 'mount' && !n.path);
  if (!fast) enterNamespaces(spec);
  if (!ownMountNs) throw new SetupError('a container needs its own mount namespace');
  // The fifo lives on the host: keep an O_PATH fd to it across pivot_root.
  const fifoPath = fast ? -1 : openSync(config.fifo, O.PATH | O.CLOEXEC);

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

  beforePivotRoot(config, syncFd);
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
  setUserAndCapabilities(spec.process, spec.linux?.seccomp, config.seccompProgram, fast);
  // A change of effective uid clears it: set again for a container with a user of its own.
  if (config.dieWithParent) {
    try {
      prctl(PR.SET_PDEATHSIG, SIGKILL);
    } catch {
      // refused by the profile: the engine's reconcile still ends a container left unkept
    }
  }
  step(`changing to the working directory ${spec.process.cwd}`, () =>
    fast ? chdir(spec.process.cwd) : process.chdir(spec.process.cwd),
  );
  if (spec.process.noNewPrivileges) step('no_new_privs', () => prctl(PR.SET_NO_NEW_PRIVS, 1));
  return { file, fifoFd: fifoPath, terminalFd, views };
}
