import { constants } from 'node:os';
import {
  type CreateContainerOptions,
  formatChanges,
  formatTree,
  type ProcessHandle,
  parseBytes,
  parseCpus,
  parseMemorySwap,
  parseSecurityOpts,
  type Resources,
} from '@corral/engine';
import { type Command, type FlagSpec, type ParsedArgs, UsageError } from '../args.js';
import { bindHandle, consoleSize, onSignals } from '../attach.js';
import { errorText } from '../errors.js';
import { takeParkedKeeper } from '../parked.js';
import { pauseAtStep } from '../test-pause.js';
import { bool, engine, int, list, str } from './common.js';
import { inspect } from './inspect.js';
import { logs } from './logs.js';
import { ps } from './ps.js';
import { createFlags, processFlags } from './run-flags.js';
import { attachedStreams, checkCidfile, pullDisplay, settingOptions, writeCidfile } from './run-settings.js';
import { mountOptions } from './volume.js';

/** The limit flags, checked and converted to Docker's units (bytes, microseconds, nano-CPUs). */
function resources(a: ParsedArgs): Resources {
  const wrap = <T>(fn: () => T): T => {
    try {
      return fn();
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
  };
  const bytes = (k: string) => (str(a, k) === undefined ? undefined : wrap(() => parseBytes(str(a, k)!, k)));
  const r: Resources = {
    memory: bytes('memory'),
    memorySwap:
      str(a, 'memory-swap') === undefined ? undefined : wrap(() => parseMemorySwap(str(a, 'memory-swap')!)),
    memoryReservation: bytes('memory-reservation'),
    nanoCpus: str(a, 'cpus') === undefined ? undefined : wrap(() => parseCpus(str(a, 'cpus')!)),
    cpuPeriod: int(a, 'cpu-period'),
    cpuQuota: int(a, 'cpu-quota'),
    cpuShares: int(a, 'cpu-shares'),
    cpusetCpus: str(a, 'cpuset-cpus'),
    cpusetMems: str(a, 'cpuset-mems'),
    pidsLimit: int(a, 'pids-limit'),
    blkioWeight: int(a, 'blkio-weight'),
    cgroupParent: str(a, 'cgroup-parent'),
  };
  return Object.fromEntries(Object.entries(r).filter(([, v]) => v !== undefined)) as Resources;
}

/** Reads `[IMAGE] CMD...` (or `--rootfs DIR CMD...`) and the flags into create options. */
function createOptions(a: ParsedArgs): CreateContainerOptions {
  const rootfs = str(a, 'rootfs');
  const rest = [...a.positionals];
  const image = rootfs ? undefined : rest.shift();
  if (!rootfs && !image)
    throw new UsageError('"run" requires at least 1 argument: an image, or --rootfs DIR');
  const cmd = rest;
  if (rootfs && !cmd.length) throw new UsageError('no command given: corral run --rootfs DIR CMD...');
  return {
    image,
    rootfs,
    cmd,
    entrypoint: str(a, 'entrypoint'),
    name: str(a, 'name'),
    env: list(a, 'env'),
    workdir: str(a, 'workdir'),
    hostname: str(a, 'hostname'),
    user: str(a, 'user'),
    init: bool(a, 'init'),
    tty: bool(a, 'tty'),
    privileged: bool(a, 'privileged'),
    capAdd: list(a, 'cap-add'),
    capDrop: list(a, 'cap-drop'),
    // Profiles are files here, read at create, as the docker CLI reads them.
    ...parseSecurityOpts(list(a, 'security-opt'), 'cli'),
    autoRemove: bool(a, 'rm'),
    restart: str(a, 'restart'),
    readonlyRootfs: bool(a, 'read-only'),
    storageDriver: str(a, 'storage-driver'),
    stopSignal: str(a, 'stop-signal'),
    stopTimeout: int(a, 'stop-timeout'),
    resources: resources(a),
    network: str(a, 'network'),
    publish: list(a, 'publish'),
    publishAll: bool(a, 'publish-all'),
    ip: str(a, 'ip'),
    macAddress: str(a, 'mac-address'),
    networkAliases: list(a, 'network-alias'),
    addHost: list(a, 'add-host'),
    dns: list(a, 'dns'),
    dnsSearch: list(a, 'dns-search'),
    dnsOptions: list(a, 'dns-option'),
    ...settingOptions(a),
    ...mountOptions(a),
  };
}

const osSignals = constants.signals as Record<string, number>;

export const run: Command = {
  name: 'run',
  usage: 'run [OPTIONS] IMAGE|--rootfs DIR [COMMAND] [ARG...]',
  description: 'Create and run a new container',
  flags: createFlags,
  stopAtPositional: true,
  failureCode: 125,
  async run(a, ctx) {
    checkCidfile(a);
    const e = await engine(ctx);
    const pulling = pullDisplay();
    const options = { ...createOptions(a), ...pulling.options };
    if (bool(a, 'detach')) {
      if (list(a, 'attach').length) throw new UsageError('Conflicting options: -a and -d');
      const r = await e.create(options).finally(pulling.finish);
      writeCidfile(a, r.id);
      await e.start(r.id, { keeper: takeParkedKeeper() });
      console.log(r.id);
      return 0;
    }
    const streams = attachedStreams(a);
    // --sig-proxy=false: the program gets no signal this process receives (they are ignored
    // here while it runs: stop it with corral stop or kill).
    const sigProxy = a.flags['sig-proxy'] !== false;
    // A signal before the program runs undoes what the run made; after, it goes to the program.
    const interrupted = new AbortController();
    let handle: ProcessHandle | null = null;
    // One listener from here until bindHandle's own is in place: a signal taken while this
    // process is busy is handled later, after the hand-over, and must find a listener then.
    let bound = false;
    const stop = onSignals((sig) => {
      if (bound) return; // bindHandle's listener passes it on
      if (!handle) interrupted.abort(sig);
      else if (sigProxy) handle.signal(sig);
    });
    const interactive = bool(a, 'interactive');
    try {
      handle = await e.run(
        options,
        {
          stdin: interactive && streams.has('stdin') ? 0 : 'ignore',
          stdout: streams.has('stdout') ? 1 : 'ignore',
          stderr: streams.has('stderr') ? 2 : 'ignore',
          consoleSize: consoleSize(),
        },
        { keeper: takeParkedKeeper(), abort: interrupted.signal, onStep: pauseAtStep() },
      );
    } catch (err) {
      stop();
      if (!interrupted.signal.aborted) throw err;
      return 128 + (osSignals[interrupted.signal.reason as NodeJS.Signals] ?? 15);
    } finally {
      pulling.finish();
    }
    // A signal taken after the run's last check, as it handed the program over: the program
    // gets it, as it gets later ones.
    if (interrupted.signal.aborted && sigProxy) handle.signal(interrupted.signal.reason as NodeJS.Signals);
    let done: Promise<number>;
    try {
      writeCidfile(a, handle.id);
      bound = true;
      done = bindHandle(handle, interactive, sigProxy); // its listener is in place from here on
    } finally {
      stop();
    }
    return done;
  },
};

export const create: Command = {
  name: 'create',
  usage: 'create [OPTIONS] IMAGE|--rootfs DIR [COMMAND] [ARG...]',
  description: 'Create a new container without starting it',
  flags: createFlags.filter((f) => !['detach', 'interactive', 'sig-proxy', 'attach'].includes(f.name)),
  stopAtPositional: true,
  failureCode: 125,
  async run(a, ctx) {
    checkCidfile(a);
    const pulling = pullDisplay();
    const r = await (await engine(ctx))
      .create({ ...createOptions(a), ...pulling.options })
      .finally(pulling.finish);
    writeCidfile(a, r.id);
    console.log(r.id);
    return 0;
  },
};

export const top: Command = {
  name: 'top',
  usage: 'top CONTAINER',
  description: "Show a container's processes: host PID, (PID inside), command",
  flags: [],
  args: { min: 1, max: 1 },
  async run(a, ctx) {
    console.log(formatTree(await (await engine(ctx)).top(a.positionals[0])));
    return 0;
  },
};

export const rm: Command = {
  name: 'rm',
  usage: 'rm [OPTIONS] CONTAINER [CONTAINER...]',
  description: 'Remove containers and their writable layers',
  flags: [
    { name: 'force', short: 'f', type: 'boolean', description: 'Kill and remove a running container' },
    { name: 'volumes', short: 'v', type: 'boolean', description: 'Remove its anonymous volumes too' },
  ],
  args: { min: 1 },
  async run(a, ctx) {
    const e = await engine(ctx);
    let code = 0;
    for (const ref of a.positionals) {
      try {
        await e.remove(ref, { force: bool(a, 'force'), volumes: bool(a, 'volumes') });
        console.log(ref);
      } catch (err) {
        console.error(`Error response from daemon: ${errorText(err)}`);
        code = 1;
      }
    }
    return code;
  },
};

export const diff: Command = {
  name: 'diff',
  usage: 'diff CONTAINER',
  description:
    "Inspect changes to files or directories on a container's filesystem (A added, C changed, D deleted)",
  flags: [],
  args: { min: 1, max: 1 },
  async run(a, ctx) {
    const out = formatChanges(await (await engine(ctx)).diff(a.positionals[0]));
    if (out) console.log(out);
    return 0;
  },
};

export const exec: Command = {
  name: 'exec',
  usage: 'exec [OPTIONS] CONTAINER COMMAND [ARG...]',
  description: 'Run a command in a running container',
  flags: [
    { name: 'detach', short: 'd', type: 'boolean', description: 'Run the command in the background' },
    ...processFlags,
  ],
  stopAtPositional: true,
  args: { min: 2 },
  async run(a, ctx) {
    const [ref, ...cmd] = a.positionals;
    const interactive = bool(a, 'interactive');
    const detach = bool(a, 'detach');
    const handle = await (await engine(ctx)).exec(
      ref,
      {
        cmd,
        env: list(a, 'env'),
        workdir: str(a, 'workdir'),
        user: str(a, 'user'),
        tty: bool(a, 'tty'),
        detach,
      },
      { stdin: interactive ? 0 : 'ignore', stdout: 1, stderr: 2, consoleSize: consoleSize() },
    );
    return detach ? handle.wait() : bindHandle(handle, interactive);
  },
};

/** A command that acts on each container named (start, stop, kill, ...). */
function eachContainer(
  name: string,
  description: string,
  /** Does the work; what it returns is printed, else the container reference (Docker's way). */
  act: (e: Awaited<ReturnType<typeof engine>>, ref: string, a: ParsedArgs) => Promise<string | undefined>,
  flags: FlagSpec[] = [],
): Command {
  return {
    name,
    usage: `${name}${flags.length ? ' [OPTIONS]' : ''} CONTAINER [CONTAINER...]`,
    description,
    flags,
    args: { min: 1 },
    async run(a, ctx) {
      const e = await engine(ctx);
      for (const ref of a.positionals) console.log((await act(e, ref, a)) ?? ref);
      return 0;
    },
  };
}

const timeFlag: FlagSpec = {
  name: 'time',
  short: 't',
  type: 'string',
  value: 'SECONDS',
  description: 'Seconds to wait before killing it (default 10)',
};

export const start = eachContainer(
  'start',
  'Start one or more stopped containers in the background',
  async (e, ref) => {
    // The keeper early.ts started for a single container, if any.
    await e.start(ref, { keeper: takeParkedKeeper() });
    return undefined;
  },
);

export const stop = eachContainer(
  'stop',
  'Stop running containers: the stop signal, then SIGKILL after a grace period',
  async (e, ref, a) => {
    await e.stop(ref, int(a, 'time'));
    return undefined;
  },
  [timeFlag],
);

export const kill = eachContainer(
  'kill',
  'Send a signal (default SIGKILL) to running containers',
  async (e, ref, a) => {
    await e.kill(ref, str(a, 'signal') ?? 'SIGKILL');
    return undefined;
  },
  [{ name: 'signal', short: 's', type: 'string', description: 'Signal to send (default SIGKILL)' }],
);

export const restart = eachContainer(
  'restart',
  'Restart containers (stop, then start in the background)',
  async (e, ref, a) => {
    await e.restart(ref, int(a, 'time'));
    return undefined;
  },
  [timeFlag],
);

export const pause = eachContainer(
  'pause',
  'Freeze every process of containers (cgroup freezer)',
  async (e, ref) => {
    await e.pause(ref);
    return undefined;
  },
);
export const unpause = eachContainer('unpause', 'Thaw paused containers', async (e, ref) => {
  await e.unpause(ref);
  return undefined;
});

export const wait = eachContainer(
  'wait',
  'Block until containers stop, then print their exit codes',
  async (e, ref) => String(await e.wait(ref)),
);

export const rename: Command = {
  name: 'rename',
  usage: 'rename CONTAINER NEW_NAME',
  description: 'Rename a container',
  flags: [],
  args: { min: 2, max: 2 },
  // A taken or invalid name fails as at create (Docker's 125 here is corral's choice too).
  exitCodes: { Conflict: 125, InvalidArgument: 125 },
  async run(a, ctx) {
    await (await engine(ctx)).rename(a.positionals[0], a.positionals[1]);
    return 0;
  },
};

export const containerCommands = [
  run,
  create,
  start,
  ps,
  top,
  stop,
  kill,
  rm,
  logs,
  diff,
  inspect,
  pause,
  unpause,
  exec,
  wait,
  restart,
  rename,
];
