// `corral --host unix:///PATH`: the commands' Backend as a Docker Engine API client of corrald
// (podman-remote's idea). Each method asks corrald what the local engine would do here and hands
// the command the engine's shapes, so output and exit codes are the daemonless ones. Loaded
// only in remote mode (common.ts imports it when --host is given).
import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  type AttachOptions,
  type ContainerSummary,
  type CreateContainerOptions,
  detachedHandle,
  EngineError,
  type EngineEvent,
  type EngineInfo,
  type EngineVersion,
  type ExecOptions,
  type LogEntry,
  type ProcessHandle,
  type ReadEventsOptions,
  type RegistrySettings,
  type RunExtras,
  type StatsSample,
  type StatsStreamOptions,
} from '@corral/engine';
import { type Backend, RemoteUnsupported } from '../backend.js';
import { createBody } from './create-body.js';
import { remoteHandle } from './handle.js';
import { Client, readText } from './http.js';
import { remoteImages, remoteNetworks, remoteVolumes } from './objects.js';
import { CHANGE_KINDS, logEntryOf, sampleOf, splitName, summaryOf } from './shapes.js';

// biome-ignore lint/suspicious/noExplicitAny: JSON of the API, read field by field
type Json = Record<string, any>;

/** A POST /wait in flight: the exit code to come, and how to stop waiting. */
interface Waiting {
  code: Promise<number>;
  cancel: () => void;
}

/**
 * docker cp's endpoints, their client (files.ts, with the engine's tar code) loaded on first use:
 * the build bundles it on its own, so that no other remote command reads or evaluates it.
 */
function lazyArchive(client: Client): Backend['archive'] {
  let loaded: Promise<Backend['archive']> | undefined;
  const load = () => {
    loaded ??= import('./files.js').then((m) => m.remoteArchive(client));
    return loaded;
  };
  return {
    get: async (...a) => (await load()).get(...a),
    copyFrom: async (...a) => (await load()).copyFrom(...a),
    copyTo: async (...a) => (await load()).copyTo(...a),
  };
}

const c = (ref: string) => `/containers/${encodeURIComponent(ref)}`;
const seconds = (ms: number | undefined) => (ms === undefined ? undefined : (ms / 1000).toFixed(3));

export class RemoteEngine implements Backend {
  readonly #c: Client;
  readonly images: Backend['images'];
  readonly volumes: Backend['volumes'];
  readonly networks: Backend['networks'];
  readonly archive: Backend['archive'];
  readonly system: Backend['system'];

  constructor(
    readonly host: string,
    /** The command line's command (`corral run`), named in errors of what corrald cannot do. */
    command: string,
    registry?: RegistrySettings,
  ) {
    if (registry?.insecureRegistries?.length)
      throw new RemoteUnsupported('--insecure-registry', "corrald's own --insecure-registry applies");
    this.#c = new Client(host, command);
    this.images = remoteImages(this.#c);
    this.volumes = remoteVolumes(this.#c);
    this.networks = remoteNetworks(this.#c);
    this.archive = lazyArchive(this.#c);
    this.system = {
      check: () => {
        throw new RemoteUnsupported(
          'corral system check',
          "it checks the data root on corrald's machine: run it there, without --host",
        );
      },
    };
  }

  version(): Promise<EngineVersion> {
    return this.#c.json('GET', '/corral/version');
  }

  info(): Promise<EngineInfo> {
    return this.#c.json('GET', '/corral/info');
  }

  async #pull(o: CreateContainerOptions): Promise<void> {
    const ref = o.image!;
    o.onPullStart?.(ref);
    const { digest } = await this.images.pull(ref, { platform: o.platform, onProgress: o.onPullProgress });
    o.onPullDone?.(digest);
  }

  /** Docker's create; a missing image is pulled first (Docker's CLI does that, not the daemon). */
  async create(o: CreateContainerOptions): Promise<{ id: string }> {
    const body = createBody(o);
    const post = () =>
      this.#c
        .json<Json>('POST', '/containers/create', { query: { name: o.name }, body })
        .then((r) => ({ id: r.Id }));
    if (o.pull === 'always') await this.#pull(o);
    try {
      return await post();
    } catch (e) {
      const missing =
        e instanceof EngineError && e.kind === 'NotFound' && /^Unable to find image/.test(e.message);
      if (!missing || o.pull === 'never' || o.pull === 'always') throw e;
    }
    await this.#pull(o);
    return post();
  }

  /** Docker's attached run: create, attach, wait (registered before the start), start. */
  async run(o: CreateContainerOptions, io: AttachOptions, extra: RunExtras = {}): Promise<ProcessHandle> {
    // -i: the program's stdin is this attach's, until it ends (Docker's OpenStdin, StdinOnce).
    const interactive = io.stdin === 0 || io.stdin === 'pipe';
    const { id } = await this.create(interactive ? { ...o, openStdin: true, stdinOnce: true } : o);
    let socket: import('node:net').Socket | undefined;
    let exited: Waiting | undefined;
    try {
      const check = () => {
        if (extra.abort?.aborted) throw new EngineError('Unavailable', 'the run was interrupted');
      };
      check();
      const conn = await this.#c.hijack(`${c(id)}/attach`, {
        query: {
          stream: true,
          stdin: interactive,
          stdout: io.stdout !== 'ignore',
          stderr: io.stderr !== 'ignore',
        },
      });
      socket = conn.socket;
      exited = await this.#waitFor(id, o.autoRemove ? 'removed' : 'next-exit');
      check();
      await this.#c.json('POST', `${c(id)}/start`);
      if (o.tty && io.consoleSize) this.#resize(`${c(id)}/resize`, io.consoleSize.cols, io.consoleSize.rows);
      return remoteHandle({
        id,
        socket: conn.socket,
        raw: conn.raw,
        io,
        exitCode: () => exited!.code,
        resize: (cols, rows) => this.#resize(`${c(id)}/resize`, cols, rows),
        signal: (sig) =>
          void this.#c.json('POST', `${c(id)}/kill`, { query: { signal: String(sig) } }).catch(() => {}),
      });
    } catch (e) {
      // Nothing of the failed run is left waiting: not this process, not the container.
      socket?.destroy();
      exited?.cancel();
      await this.#c.json('DELETE', c(id), { query: { force: true } }).catch(() => {});
      throw e;
    }
  }

  /** POST /wait: resolves once corrald has the request (headers flushed), with the exit code to come. */
  async #waitFor(ref: string, condition: string): Promise<Waiting> {
    const res = await this.#c.request('POST', `${c(ref)}/wait`, { query: { condition } });
    const code = readText(res).then((t) => {
      const j = JSON.parse(t) as { StatusCode: number; Error?: { Message?: string } | null };
      if (j.Error?.Message) throw new EngineError('Unavailable', j.Error.Message);
      return j.StatusCode;
    });
    code.catch(() => {});
    // In an object: an async function's promise would take the code's own (and wait for the exit).
    return { code, cancel: () => res.destroy() };
  }

  #resize(path: string, cols: number, rows: number): void {
    void this.#c.json('POST', path, { query: { h: rows, w: cols } }).catch(() => {});
  }

  async start(ref: string): Promise<void> {
    await this.#c.json('POST', `${c(ref)}/start`);
  }

  async list(o: { all?: boolean; filters?: Record<string, string[]> } = {}): Promise<ContainerSummary[]> {
    const filters = o.filters ?? {};
    const rows = await this.#c.json<Json[]>('GET', '/containers/json', {
      query: {
        all: o.all === true,
        filters: Object.keys(filters).length ? JSON.stringify(filters) : undefined,
      },
    });
    // corrald lists every state once a filter is given; the engine only with -a or a state filter.
    const all = o.all || Boolean(filters.status?.length || filters.exited?.length);
    return rows.map(summaryOf).filter((s) => all || s.state === 'running');
  }

  async size(ref: string): Promise<{ rw: number; rootFs: number }> {
    const rows = await this.#c.json<Json[]>('GET', '/containers/json', {
      query: { all: true, size: true, filters: JSON.stringify({ id: [ref] }) },
    });
    const r = rows.find((x) => x.Id === ref) ?? rows[0];
    return { rw: r?.SizeRw ?? 0, rootFs: r?.SizeRootFs ?? 0 };
  }

  async stop(ref: string, timeoutSec?: number): Promise<void> {
    await this.#c.json('POST', `${c(ref)}/stop`, { query: { t: timeoutSec } });
  }

  async kill(ref: string, signal = 'SIGKILL'): Promise<void> {
    await this.#c.json('POST', `${c(ref)}/kill`, { query: { signal } });
  }

  async restart(ref: string, timeoutSec?: number): Promise<void> {
    await this.#c.json('POST', `${c(ref)}/restart`, { query: { t: timeoutSec } });
  }

  async pause(ref: string): Promise<void> {
    await this.#c.json('POST', `${c(ref)}/pause`);
  }

  async unpause(ref: string): Promise<void> {
    await this.#c.json('POST', `${c(ref)}/unpause`);
  }

  async wait(ref: string): Promise<number> {
    return (await this.#waitFor(ref, 'not-running')).code;
  }

  async rename(ref: string, name: string): Promise<void> {
    await this.#c.json('POST', `${c(ref)}/rename`, { query: { name } });
  }

  async remove(ref: string, o: { force?: boolean; volumes?: boolean } = {}): Promise<void> {
    await this.#c.json('DELETE', c(ref), { query: { force: o.force, v: o.volumes } });
  }

  /** Docker's exec: create, then start attached (hijacked) or detached; the exit code from its inspect. */
  async exec(ref: string, o: ExecOptions, io: AttachOptions = {}): Promise<ProcessHandle> {
    const stdin = io.stdin === 0 || io.stdin === 'pipe';
    const size = io.consoleSize;
    const { Id: id } = await this.#c.json<Json>('POST', `${c(ref)}/exec`, {
      body: {
        Cmd: o.cmd,
        Env: o.env ?? [],
        WorkingDir: o.workdir ?? '',
        User: o.user ?? '',
        Tty: o.tty === true,
        AttachStdin: stdin,
        AttachStdout: true,
        AttachStderr: true,
        ...(o.tty && size ? { ConsoleSize: [size.rows, size.cols] } : {}),
      },
    });
    const path = `/exec/${id}`;
    if (o.detach) {
      await this.#c.json('POST', `${path}/start`, { body: { Detach: true, Tty: o.tty === true } });
      return detachedHandle(ref);
    }
    const conn = await this.#c.hijack(`${path}/start`, { body: { Detach: false, Tty: o.tty === true } });
    const exitCode = async () => {
      for (;;) {
        const j = await this.#c.json<Json>('GET', `${path}/json`);
        if (!j.Running && j.ExitCode !== null) return j.ExitCode as number;
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    return remoteHandle({
      id: ref,
      socket: conn.socket,
      raw: conn.raw,
      io,
      exitCode,
      resize: (cols, rows) => this.#resize(`${path}/resize`, cols, rows),
      // Docker's API has no signal for an exec; a terminal's ^C reaches it through the TTY.
      signal: () => {},
    });
  }

  /** Rounds of one-shot samples (corrald takes each against one 0.5 s before), as the engine's stream. */
  async *statsStream(o: StatsStreamOptions = {}): AsyncGenerator<StatsSample[]> {
    const named = (o.refs?.length ?? 0) > 0;
    const one = async (ref: string) => {
      const res = await this.#c.json<Json>('GET', `${c(ref)}/stats`, { query: { stream: false } });
      if (res.read?.startsWith('0001-'))
        throw new EngineError('Conflict', `Container ${String(res.name).replace(/^\//, '')} is not running`);
      return sampleOf(res);
    };
    for (;;) {
      // Every running container, listed again each round, unless some were named.
      const refs = named ? [...o.refs!] : (await this.list()).map((s) => s.id);
      const got = await Promise.all(
        refs.map((ref) => one(ref).catch((e) => (named ? Promise.reject(e) : null))),
      );
      const round = got.filter((s): s is StatsSample => s !== null);
      yield round;
      if (o.once || o.signal?.aborted || (named && round.length === 0)) return;
      await new Promise((r) => setTimeout(r, o.intervalMs ?? 1000));
      if (o.signal?.aborted) return;
    }
  }

  async ports(ref: string) {
    const j = await this.#c.json<Json>('GET', `${c(ref)}/json`);
    if (!j.State?.Running) return [];
    return Object.entries((j.NetworkSettings?.Ports ?? {}) as Record<string, Json[] | null>).flatMap(
      ([k, binds]) => {
        const [port, protocol = 'tcp'] = k.split('/');
        return (binds ?? []).map((b) => ({
          hostIP: b.HostIp,
          hostPort: Number(b.HostPort),
          containerPort: Number(port),
          protocol,
        }));
      },
    );
  }

  inspect(ref: string): Promise<unknown> {
    return this.#c.json('GET', `/corral${c(ref)}/json`);
  }

  top(ref: string) {
    return this.#c.json<Awaited<ReturnType<Backend['top']>>>('GET', `/corral${c(ref)}/top`);
  }

  /** The log with timestamps always asked for: each record's time is the engine's entry's. */
  async *logs(
    ref: string,
    o: { follow?: boolean; tail?: number; since?: number; until?: number } = {},
  ): AsyncGenerator<LogEntry> {
    const res = await this.#c.request('GET', `${c(ref)}/logs`, {
      query: {
        stdout: true,
        stderr: true,
        timestamps: true,
        follow: o.follow === true,
        tail: o.tail,
        since: seconds(o.since),
        until: seconds(o.until),
      },
    });
    const raw = String(res.headers['content-type']).includes('raw-stream');
    let buf: Buffer = Buffer.alloc(0);
    for await (const chunk of res as AsyncIterable<Buffer>) {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      if (raw) {
        // A TTY's log comes unframed: one record a line.
        let nl = buf.indexOf(10);
        while (nl >= 0) {
          yield logEntryOf(buf.subarray(0, nl + 1), 'stdout');
          buf = buf.subarray(nl + 1);
          nl = buf.indexOf(10);
        }
        continue;
      }
      while (buf.length >= 8) {
        const size = buf.readUInt32BE(4);
        if (buf.length < 8 + size) break;
        yield logEntryOf(buf.subarray(8, 8 + size), buf[0] === 2 ? 'stderr' : 'stdout');
        buf = buf.subarray(8 + size);
      }
    }
    if (raw && buf.length) yield logEntryOf(buf, 'stdout');
  }

  async diff(ref: string) {
    const rows = (await this.#c.json<Json[] | null>('GET', `${c(ref)}/changes`)) ?? [];
    return rows.map((r) => ({ path: r.Path as string, kind: CHANGE_KINDS[r.Kind as 0] ?? 'modified' }));
  }

  events(o: ReadEventsOptions = {}): AsyncGenerator<EngineEvent> {
    const filters = o.filters && Object.keys(o.filters).length ? JSON.stringify(o.filters) : undefined;
    return this.#c.jsonLines<EngineEvent>('GET', '/events', {
      query: { since: seconds(o.since), until: seconds(o.until), filters },
      signal: o.signal,
    });
  }

  async commitContainer(
    ref: string,
    o: { name?: string; author?: string; message?: string; pause?: boolean; changes?: string[] } = {},
  ): Promise<{ id: string }> {
    const name = o.name ? splitName(o.name) : undefined;
    const r = await this.#c.json<Json>('POST', '/commit', {
      query: {
        container: ref,
        repo: name?.repo,
        tag: name?.tag,
        author: o.author,
        comment: o.message,
        pause: o.pause !== false,
        changes: o.changes,
      },
      body: {},
    });
    return { id: r.Id };
  }

  async exportContainer(ref: string, out: Writable): Promise<void> {
    await pipeline(await this.#c.request('GET', `${c(ref)}/export`), out);
  }

  async pruneContainers(filters: Record<string, string[]> = {}) {
    const r = await this.#c.json<Json>('POST', '/containers/prune', {
      query: { filters: Object.keys(filters).length ? JSON.stringify(filters) : undefined },
    });
    return {
      deleted: (r.ContainersDeleted ?? []) as string[],
      spaceReclaimed: (r.SpaceReclaimed ?? 0) as number,
    };
  }

  diskUsage(): never {
    throw new RemoteUnsupported('corral system df');
  }

  systemPrune(): never {
    throw new RemoteUnsupported('corral system prune');
  }
}
