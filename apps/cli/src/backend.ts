// What the CLI's commands ask of an engine: the local one (@corral/engine's Engine, daemonless)
// or corrald at `--host` (remote/engine.ts, a Docker Engine API client). The commands parse and
// print; both backends hand them the same shapes, so each command is written once. The remote
// client is loaded only when `--host` is given: a daemonless command never reads its code.
import type { Readable, Writable } from 'node:stream';
import type {
  AttachOptions,
  ContainerSummary,
  CreateContainerOptions,
  Engine,
  EngineEvent,
  EngineInfo,
  EngineVersion,
  ExecOptions,
  LogEntry,
  MountCreateOptions,
  PathStat,
  ProcessHandle,
  ProgressEvent,
  ReadEventsOptions,
  RunExtras,
  StatsSample,
  StatsStreamOptions,
  VolumeView,
} from '@corral/engine';

type Awaitable<T> = T | Promise<T>;

/** The engine's sub-objects with each method's result awaitable (the local ones are often synchronous). */
type Loose<T> = {
  [K in keyof T]: T[K] extends (...a: infer A) => infer R ? (...a: A) => Awaitable<Awaited<R>> : T[K];
};

interface ImageRow {
  id: string;
  repoTags: string[];
  created?: string;
  size: number;
}

interface NetworkRow {
  id: string;
  name: string;
  driver: string;
  subnet: string;
  internal: boolean;
  created: string;
  labels?: Record<string, string>;
}

interface PortRow {
  hostIP: string;
  hostPort: number;
  containerPort: number;
  protocol: string;
}

/** What the commands use of an engine; `Engine` itself is one (see common.ts). */
export interface Backend {
  /** `unix:///path` of corrald in remote mode; absent for the engine in this process. */
  readonly host?: string;
  version(): Awaitable<EngineVersion>;
  info(): Awaitable<EngineInfo>;
  create(options: CreateContainerOptions): Promise<{ id: string }>;
  run(options: CreateContainerOptions, io: AttachOptions, extra?: RunExtras): Promise<ProcessHandle>;
  start(ref: string, extra?: Parameters<Engine['start']>[1]): Promise<unknown>;
  list(options?: { all?: boolean; filters?: Record<string, string[]> }): Awaitable<ContainerSummary[]>;
  size(ref: string): Awaitable<{ rw: number; rootFs: number }>;
  stop(ref: string, timeoutSec?: number): Promise<unknown>;
  kill(ref: string, signal?: string): Promise<unknown>;
  restart(ref: string, timeoutSec?: number): Promise<unknown>;
  pause(ref: string): Promise<unknown>;
  unpause(ref: string): Promise<unknown>;
  wait(ref: string): Promise<number>;
  rename(ref: string, name: string): Awaitable<unknown>;
  remove(ref: string, options?: { force?: boolean; volumes?: boolean }): Promise<unknown>;
  exec(ref: string, options: ExecOptions, io?: AttachOptions): Promise<ProcessHandle>;
  statsStream(options?: StatsStreamOptions): AsyncIterable<StatsSample[]>;
  ports(ref: string): Awaitable<PortRow[]>;
  inspect(ref: string): Awaitable<unknown>;
  top(ref: string): Awaitable<ReturnType<Engine['top']>>;
  logs(
    ref: string,
    options?: { follow?: boolean; tail?: number; since?: number; until?: number },
  ): AsyncIterable<LogEntry>;
  diff(ref: string): Awaitable<ReturnType<Engine['diff']>>;
  events(options?: ReadEventsOptions): AsyncIterable<EngineEvent>;
  commitContainer(
    ref: string,
    options?: {
      name?: string;
      author?: string;
      message?: string;
      pause?: boolean;
      /** Dockerfile instructions for the image's config (`-c`; the engine's applyChanges). */
      changes?: string[];
      onProgress?: (n: number) => void;
    },
  ): Promise<{ id: string }>;
  exportContainer(ref: string, out: Writable): Promise<void>;
  pruneContainers(filters?: Record<string, string[]>): Promise<{ deleted: string[]; spaceReclaimed: number }>;
  diskUsage(): Awaitable<ReturnType<Engine['diskUsage']>>;
  systemPrune(options?: { all?: boolean; volumes?: boolean }): ReturnType<Engine['systemPrune']>;
  readonly system: Loose<Engine['system']>;
  readonly images: {
    list(): Awaitable<ImageRow[]>;
    inspect(ref: string): Promise<Record<string, unknown>>;
    history(ref: string): Promise<unknown[]>;
    tag(source: string, target: string): Promise<void>;
    remove(ref: string, options?: { force?: boolean }): Promise<{ untagged: string[]; deleted: string[] }>;
    prune(options?: {
      all?: boolean;
      until?: string;
    }): Promise<{ deletedImages: string[]; reclaimedBytes: number }>;
    load(input: string | Readable): Promise<{ images: { id: string; names: string[] }[] }>;
    save(refs: string[], output: Writable): Promise<void>;
    import(
      source: string | Readable,
      options?: { names?: string[]; changes?: string[]; message?: string },
    ): Promise<{ id: string }>;
    pull(
      ref: string,
      options?: { platform?: string; onProgress?: (e: ProgressEvent) => void },
    ): Promise<{ digest: string }>;
    push(ref: string, options?: { onProgress?: (e: ProgressEvent) => void }): Promise<{ digest: string }>;
    // The engine's login answers an identity token too (for corrald's /auth); the CLI needs none.
    login(server: string, username: string, password: string): Promise<unknown>;
  };
  readonly volumes: {
    create(options: {
      name?: string;
      driver?: string;
      labels?: Record<string, string>;
      options?: Record<string, string>;
    }): Awaitable<VolumeView>;
    list(filters?: Record<string, string[]>): Awaitable<VolumeView[]>;
    inspect(name: string): Awaitable<VolumeView>;
    remove(name: string, options?: { force?: boolean }): Awaitable<unknown>;
    prune(options?: { all?: boolean; filters?: Record<string, string[]> }): Awaitable<{
      removed: string[];
      spaceReclaimed: number;
    }>;
  };
  readonly networks: {
    create(options: {
      name: string;
      subnet?: string;
      gateway?: string;
      internal?: boolean;
      labels?: Record<string, string>;
    }): Promise<{ id: string }>;
    list(): Awaitable<NetworkRow[]>;
    inspect(ref: string): Awaitable<unknown>;
    remove(ref: string): Promise<unknown>;
    connect(net: string, ref: string, options?: { ip?: string; aliases?: string[] }): Promise<unknown>;
    disconnect(net: string, ref: string): Promise<unknown>;
    prune(): Promise<string[]>;
    down(): Promise<string[]>;
  };
  readonly archive: {
    get(ref: string, path: string, out: Writable): Promise<PathStat | unknown>;
    copyFrom(
      ref: string,
      src: string,
      dst: string,
      options?: { followLink?: boolean; archive?: boolean },
    ): Promise<{ bytes: number }>;
    copyTo(
      ref: string,
      src: string,
      dst: string,
      options?: { followLink?: boolean; archive?: boolean; stdin?: Readable },
    ): Promise<{ bytes: number }>;
  };
}

export type { MountCreateOptions };

/**
 * A command (or an option of one) that remote mode cannot do: the CLI says so and exits 125;
 * it never falls back to running the command on this machine's data root.
 */
export class RemoteUnsupported extends Error {
  /** Also one thrown by the remote client's own bundle (scripts/bundle.mjs): by its name. */
  static override [Symbol.hasInstance](x: unknown): x is RemoteUnsupported {
    return x instanceof Error && x.name === 'RemoteUnsupported';
  }

  constructor(what: string, why?: string) {
    super(`${what} is not supported with --host (remote mode)${why ? `: ${why}` : ''}`);
    this.name = 'RemoteUnsupported';
  }
}
