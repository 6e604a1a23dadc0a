import { closeSync, existsSync, mkdirSync, openSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { validateLimits } from '@corral/cgroups';
import { type ContainerConfig, ensureBusyboxImage, isImageError, type ProgressEvent } from '@corral/image';
import { parseSignal, procStartTime } from '@corral/sys';
import type { EngineContext } from './context.js';
import { EngineError, engineOp } from './errors.js';
import { type HealthConfig, resolveHealthcheck } from './health.js';
import { pullImage } from './images.js';
import { type MountCreateOptions, planMounts, removeVolumes } from './mounts.js';
import { NAME_RE, newId, shortId } from './names.js';
import { type NetworkCreateOptions, netOp, networkConfig } from './network-config.js';
import type { ContainerRecord, Resources } from './records.js';
import { checkRestartPolicy, parseRestartPolicy, type RestartPolicy } from './restart.js';
import { checkRunSettings, type RunSettings } from './run-options.js';
import { type SeccompChoice, seccompOption } from './seccomp.js';
import { capabilityNames } from './spec.js';

export interface CreateContainerOptions extends NetworkCreateOptions, RunSettings, MountCreateOptions {
  /** An image name, or null with `rootfs`. */
  image?: string;
  /** A pseudo-terminal for the program (`-t`). */
  tty?: boolean;
  /** Keep the program's stdin open (`-i`), for clients that attach later; `stdinOnce`: until the first ends it. */
  openStdin?: boolean;
  stdinOnce?: boolean;
  privileged?: boolean;
  /** Capabilities beyond Docker's defaults, and ones to take away (`ALL` for every one). */
  capAdd?: string[];
  capDrop?: string[];
  /**
   * Docker's default seccomp profile (`default`), none (`unconfined`), or a profile in Docker's
   * format: `{ profile }` its JSON text (or the parsed object), `{ file }` a file this process
   * reads (the command line's `--security-opt seccomp=FILE`). Checked and resolved at create.
   */
  seccomp?: SeccompChoice;
  /** no_new_privs: setuid binaries and file capabilities grant nothing. */
  noNewPrivileges?: boolean;
  /**
   * Docker API's SecurityOpt strings, parsed here (parseSecurityOpts 'api'):
   * `seccomp=unconfined|builtin|<profile JSON>` (the profile inline, as the docker CLI sends it:
   * nothing here opens a file a client names) and `no-new-privileges`. They override `seccomp`
   * and `noNewPrivileges`. A front-end whose users name profile files parses its flag with
   * parseSecurityOpts(opts, 'cli') and passes `seccomp` instead.
   */
  securityOpt?: string[];
  /** Replaces the image's entrypoint ('' for none); the image's Cmd is then dropped too. */
  entrypoint?: string;
  /** A folder to use as the container's (read-only) root layer. */
  rootfs?: string;
  cmd: string[];
  name?: string;
  /** `K=V` entries, checked here. */
  env?: string[];
  workdir?: string;
  hostname?: string;
  user?: string;
  init?: boolean;
  autoRemove?: boolean;
  storageDriver?: string;
  readonlyRootfs?: boolean;
  stopSignal?: string;
  /** Seconds between the stop signal and SIGKILL (default 10). */
  stopTimeout?: number;
  resources?: Resources;
  /** Docker's --health-* (durations in ns); `Test: ["NONE"]` for --no-healthcheck. */
  healthcheck?: HealthConfig;
  /** When to pull the image: `missing` (default), `always`, `never`. */
  pull?: 'missing' | 'always' | 'never';
  /** `--platform OS/ARCH[/VARIANT]`: the image to pick from a multi-platform index when pulling. */
  platform?: string;
  /** Called once a pull begins (the image was missing or `pull: always`), then with its progress. */
  onPullStart?: (ref: string) => void;
  onPullProgress?: (e: ProgressEvent) => void;
  /** Called when that pull has ended well, with the digest the name points at. */
  onPullDone?: (digest: string) => void;
  /**
   * The pid of the process that runs this container attached and owns its cleanup (set by
   * Engine.run): an `--rm` container whose owner died before it did is reclaimed.
   */
  owner?: number;
  /**
   * Cancels what create waits on, a pull of a missing image (Engine.run passes its `abort`):
   * a run interrupted while it pulls ends at once and leaves nothing.
   */
  signal?: AbortSignal;
  /** `--restart`: a string as the flag takes it, or Docker's RestartPolicy object. */
  restart?: string | { name?: string; maximumRetryCount?: number };
}

/**
 * Docker's security options corral knows: `seccomp=unconfined`, `seccomp=builtin`, a profile,
 * `no-new-privileges`; anything else is refused, not silently ignored. The profile is written
 * as each of Docker's two front doors takes it: `cli`, the command line's `seccomp=FILE` (a
 * path, relative to this process's folder, read at create, as the docker CLI reads it); `api`,
 * the Engine API's `seccomp=<JSON>` (the docker CLI sends the file's content): a value that is
 * not a JSON object is refused there and never opened as a file.
 */
export function parseSecurityOpts(
  opts: readonly string[],
  form: 'api' | 'cli' = 'api',
): Pick<CreateContainerOptions, 'seccomp' | 'noNewPrivileges'> {
  const out: Pick<CreateContainerOptions, 'seccomp' | 'noNewPrivileges'> = {};
  const flag = form === 'cli' ? '--security-opt' : 'SecurityOpt';
  for (const o of opts) {
    const seccomp = /^seccomp[=:](.*)$/s.exec(o)?.[1];
    if (seccomp === 'unconfined') out.seccomp = 'unconfined';
    else if (seccomp === 'builtin') out.seccomp = 'default';
    else if (seccomp && form === 'cli') out.seccomp = { file: resolve(seccomp) };
    else if (seccomp?.trimStart().startsWith('{')) out.seccomp = { profile: seccomp };
    else if (seccomp)
      throw new EngineError(
        'InvalidArgument',
        `${flag} seccomp: the profile must be inline JSON (a client reads a profile file and sends its content), or unconfined or builtin`,
      );
    else if (o === 'no-new-privileges' || o === 'no-new-privileges=true' || o === 'no-new-privileges:true')
      out.noNewPrivileges = true;
    else
      throw new EngineError(
        'InvalidArgument',
        `unsupported ${flag} ${o}: seccomp=unconfined|builtin|${form === 'cli' ? 'FILE' : 'PROFILE-JSON'} or no-new-privileges`,
      );
  }
  return out;
}

/** The restart policy asked for, checked against Docker's rules (none with --rm). */
function restartPolicyOf(options: CreateContainerOptions): RestartPolicy {
  const r = options.restart;
  const policy =
    r === undefined
      ? checkRestartPolicy({})
      : typeof r === 'string'
        ? parseRestartPolicy(r)
        : checkRestartPolicy(r);
  if (policy.name !== 'no' && options.autoRemove)
    throw new EngineError('InvalidArgument', 'Conflicting options: --restart and --rm');
  return policy;
}

/** Environment entries must be `K=V`. */
export function checkEnv(env: readonly string[]): void {
  for (const e of env)
    if (!e.includes('='))
      throw new EngineError('InvalidArgument', `invalid environment variable ${e}: use K=V`);
}

/** A signal by name or number, or an InvalidArgument error. */
export function signalNumber(signal: string): number {
  try {
    return parseSignal(signal);
  } catch {
    throw new EngineError('InvalidArgument', `invalid signal: ${signal}`);
  }
}

/** A timeout in seconds (stop, restart): a whole number, -1 for none. */
export function checkTimeout(seconds: number | undefined): number | undefined {
  if (seconds === undefined) return undefined;
  if (!Number.isInteger(seconds) || seconds < -1)
    throw new EngineError(
      'InvalidArgument',
      `invalid timeout ${seconds}: whole seconds, or -1 to wait forever`,
    );
  return seconds;
}

function ownerOf(pid: number | undefined): { owner?: { pid: number; startTime: number } } {
  const startTime = pid === undefined ? null : procStartTime(pid);
  return pid !== undefined && startTime !== null ? { owner: { pid, startTime } } : {};
}

export function isBusybox(ref: string): boolean {
  return [
    'busybox',
    'busybox:latest',
    'docker.io/library/busybox:latest',
    'docker.io/library/busybox',
  ].includes(ref);
}

/**
 * What a container's root is made of and what its image says to run: a folder given with
 * --rootfs, or an image from the store (the embedded busybox is made on first use).
 */
async function resolveRoot(
  ctx: EngineContext,
  options: CreateContainerOptions,
  holder: string,
): Promise<{ image: string; imageId: string | null; layers: string[]; config: ContainerConfig }> {
  if (options.rootfs) {
    const dir = resolve(options.rootfs);
    if (!existsSync(dir) || !statSync(dir).isDirectory())
      throw new EngineError('InvalidArgument', `rootfs ${dir} does not exist or is not a directory`);
    return { image: dir, imageId: null, layers: [dir], config: {} };
  }
  const ref = options.image ?? '';
  const pull = options.pull ?? 'missing';
  if (!['missing', 'always', 'never'].includes(pull))
    throw new EngineError('InvalidArgument', `invalid --pull ${pull}: missing, always or never`);
  // The embedded busybox is made here, never fetched.
  let record = pull === 'always' && !isBusybox(ref) ? undefined : ctx.store.resolve(ref);
  if (!record && isBusybox(ref)) record = await ensureBusyboxImage(ctx.store);
  // --platform and an image here for another one: pulled again (missing), or refused (never).
  if (record && options.platform && !isBusybox(ref)) {
    const img = await ctx.store.readConfig(record.configDigest);
    if (!platformMatches(img, options.platform)) {
      if (pull === 'never')
        throw new EngineError(
          'NotFound',
          `image '${ref}' is here for ${img.os}/${img.architecture}, not ${options.platform} (--pull never)`,
        );
      record = undefined;
    }
  }
  if (!record && pull === 'never')
    throw new EngineError('NotFound', `Unable to find image '${ref}' locally: pull or load it first`);
  if (!record) {
    options.onPullStart?.(ref);
    try {
      record = await pullImage(ctx, ref, {
        platform: options.platform,
        onProgress: options.onPullProgress,
        signal: options.signal,
      });
      options.onPullDone?.(record.indexDigest ?? record.manifestDigest);
    } catch (e) {
      if (!(e instanceof EngineError)) throw e;
      const where =
        pull === 'always' ? 'pulling it' : `Unable to find image '${ref}' locally, and pulling it`;
      throw new EngineError(
        e.kind,
        `${where} failed (--pull ${pull}): ${e.message}`,
        e.registry ? { registry: e.registry } : {},
      );
    }
  }
  const held = await holdImage(ctx, ref, record.manifestDigest, holder);
  const config = (await ctx.store.readConfig(held.configDigest)).config ?? {};
  const layers = held.layers.map((l) => ctx.store.layerDir(l.diffId)).reverse();
  return { image: ref, imageId: held.id, layers, config };
}

/**
 * Holds the image until the container's record names it (see ImageStore.hold): an rmi racing
 * this create either keeps the image for it, or came first, and then the image is not found.
 */
async function holdImage(ctx: EngineContext, ref: string, manifestDigest: string, holder: string) {
  try {
    return await ctx.store.hold(manifestDigest, holder);
  } catch (e) {
    if (!isImageError(e, 'NOT_FOUND')) throw e;
    throw new EngineError(
      'NotFound',
      `Unable to find image '${ref}' locally: it was removed meanwhile (${e.message})`,
    );
  }
}

const ARCH_ALIASES: Record<string, string> = { x86_64: 'amd64', aarch64: 'arm64', armhf: 'arm', i386: '386' };

/** Whether an image's os/architecture[/variant] is the `--platform OS/ARCH[/VARIANT]` asked for. */
function platformMatches(
  img: { os: string; architecture: string; variant?: string },
  platform: string,
): boolean {
  const [os, arch = '', variant] = platform.toLowerCase().split('/');
  const norm = (a: string) => ARCH_ALIASES[a] ?? a;
  return (
    img.os === os &&
    norm(img.architecture) === norm(arch) &&
    (variant === undefined || img.variant === variant)
  );
}

/** Checks limits against what this host can enforce, before anything is made. */
function checkResources(resources: Resources): Resources {
  const { cgroupParent, ...limits } = resources;
  if (!Object.values(limits).some((v) => v !== undefined)) return resources;
  try {
    return { ...validateLimits(limits), ...(cgroupParent ? { cgroupParent } : {}) };
  } catch (e) {
    throw new EngineError('InvalidArgument', (e as Error).message);
  }
}

/** Makes a container (Docker's `create`): a record, a name, a writable layer; nothing runs yet. */
export async function createContainer(
  ctx: EngineContext,
  options: CreateContainerOptions,
): Promise<ContainerRecord> {
  const id = newId();
  try {
    return await makeContainer(ctx, options, id);
  } finally {
    ctx.store.unhold(id); // the record names its image now (or the create failed)
  }
}

async function makeContainer(
  ctx: EngineContext,
  options: CreateContainerOptions,
  id: string,
): Promise<ContainerRecord> {
  const storageDriver = options.storageDriver ?? 'overlay';
  try {
    ctx.snapshots(storageDriver);
  } catch (e) {
    throw new EngineError('InvalidArgument', `storage driver ${storageDriver}: ${(e as Error).message}`);
  }
  checkEnv(options.env ?? []);
  const security = options.securityOpt ? parseSecurityOpts(options.securityOpt) : {};
  const seccompChoice = security.seccomp ?? options.seccomp;
  const noNewPrivileges = security.noNewPrivileges ?? options.noNewPrivileges ?? false;
  const resources = checkResources({
    ...(options.resources ?? {}),
    ...(options.oomKillDisable ? { oomKillDisable: true } : {}),
  });
  // Unknown capability names and a bad seccomp profile fail here, before anything is made.
  const caps = capabilityNames({
    privileged: options.privileged ?? false,
    capAdd: options.capAdd ?? [],
    capDrop: options.capDrop ?? [],
  } as ContainerRecord['hostConfig']);
  const seccomp = seccompOption(seccompChoice, caps);
  const stopTimeout = checkTimeout(options.stopTimeout) ?? 10;
  const restartPolicy = restartPolicyOf(options);
  // Checked before an image is pulled: a bad flag costs nothing.
  const run = checkRunSettings(options, options.network ?? 'bridge');
  planMounts(ctx, options, []); // bad mount flags fail before an image is pulled
  // A store lookup's ImageError (a damaged refs.json) as the engine's, never a bare stack.
  const { image, imageId, layers, config } = await engineOp(() => resolveRoot(ctx, options, id));
  // Docker's rules: --entrypoint replaces the image's and drops its Cmd; arguments replace Cmd.
  const entrypoint =
    options.entrypoint !== undefined
      ? options.entrypoint
        ? [options.entrypoint]
        : []
      : (config.Entrypoint ?? []);
  const args = options.cmd.length ? options.cmd : options.entrypoint !== undefined ? [] : (config.Cmd ?? []);
  const cmd = [...entrypoint, ...args];
  if (!cmd.length) throw new EngineError('InvalidArgument', 'No command specified');
  const stopSignal = options.stopSignal ?? config.StopSignal ?? 'SIGTERM';
  signalNumber(stopSignal);
  const net = networkConfig(options, config, (ref) => ctx.records.resolve(ref));
  for (const n of Object.keys(net.network.networks))
    if (n !== 'bridge') await netOp(() => ctx.net.networks.get(n)); // NotFound before anything is made
  if (options.hostname && net.network.mode.startsWith('container:'))
    throw new EngineError('InvalidArgument', 'conflicting options: --hostname and --network container:NAME');
  const healthcheck = resolveHealthcheck(options.healthcheck, config.Healthcheck as HealthConfig | undefined);
  const planned = planMounts(ctx, options, Object.keys(config.Volumes ?? {}));
  // A name asked for is claimed once the record is written (below), so that it never points at
  // a container a killed create did not make; a random one is claimed now (never contended).
  if (options.name !== undefined && !NAME_RE.test(options.name))
    throw new EngineError(
      'InvalidArgument',
      `Invalid container name (${options.name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`,
    );
  const name = options.name ?? ctx.records.claimName(undefined, id);
  const record: ContainerRecord = {
    id,
    name,
    created: new Date().toISOString(),
    image,
    imageId,
    layers,
    config: {
      cmd,
      env: [...(config.Env ?? []), ...(options.env ?? [])],
      workdir: options.workdir ?? (config.WorkingDir || '/'),
      hostname: options.hostname ?? net.hostname ?? shortId(id),
      user: options.user ?? config.User ?? '',
      init: options.init ?? false,
      tty: options.tty ?? false,
      ...(options.openStdin ? { openStdin: true, stdinOnce: options.stdinOnce === true } : {}),
      entrypoint,
      stopSignal,
      stopTimeout,
      labels: { ...(config.Labels ?? {}), ...run.labels },
      ...(healthcheck ? { healthcheck } : {}),
    },
    hostConfig: {
      autoRemove: options.autoRemove ?? false,
      storageDriver,
      readonlyRootfs: options.readonlyRootfs ?? false,
      privileged: options.privileged ?? false,
      capAdd: options.capAdd ?? [],
      capDrop: options.capDrop ?? [],
      ...seccomp,
      noNewPrivileges,
      resources,
      network: net.network,
      ...(planned.mounts.length ? { mounts: planned.mounts } : {}),
      ...(restartPolicy.name !== 'no' ? { restartPolicy } : {}),
      ...run.hostConfig,
    },
    state: {
      status: 'created',
      pid: 0,
      startedAt: null,
      finishedAt: null,
      exitCode: null,
      error: null,
      oomKilled: false,
      paused: false,
      detached: false,
      ...ownerOf(options.owner),
    },
  };
  let volumesMade: string[] = [];
  try {
    volumesMade = planned.make();
    const dir = ctx.records.dir(id);
    // The folder and its record at once: a create killed from here on leaves a container that
    // `rm -f` (and for an --rm run whose owner died, the next command) finds and removes with
    // all it made, and one killed before leaves nothing but a folder in the trash.
    ctx.records.create(record);
    // Two creates with one name: the one that loses removes its record (not the winner's name).
    if (options.name !== undefined) ctx.records.claimName(options.name, id);
    for (const sub of ['rootfs', 'bundle']) mkdirSync(join(dir, sub), { mode: 0o755 });
    ctx.snapshots(storageDriver).prepare(id, layers);
    // The log exists from create on: a follower that opens it before the start reads every
    // line, also of an --rm container removed right after its program ends.
    closeSync(openSync(ctx.logPath(id), 'a', 0o640));
  } catch (e) {
    ctx.records.remove(record);
    removeVolumes(ctx, volumesMade);
    throw e;
  }
  ctx.events.emit('container', 'create', id, { name, image });
  return record;
}
