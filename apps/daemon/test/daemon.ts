import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { request } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Cleanups, exec, type Result, runCorral, until } from '@corral/testkit';

/** The first fd that startDaemon's `leak` files have in the daemon. */
export const LEAK_FD = 40;

export const CORRALD = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'corrald.js');

export interface Daemon {
  socket: string;
  root: string;
  execRoot: string;
  child: ChildProcess;
  log: () => string;
  /** The docker CLI at this daemon (DOCKER_HOST), its own config folder. */
  docker(args: string[], opts?: { input?: string; bin?: string }): Promise<Result>;
  /** `docker`, which must exit 0: else an error with its stderr and the daemon's log's tail. */
  must(args: string[], opts?: { input?: string; bin?: string }): Promise<Result>;
  api(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<ApiResult>;
}

export interface ApiResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  // biome-ignore lint/suspicious/noExplicitAny: JSON of the API, read field by field
  json: () => any;
}

/** One request on a unix socket, the whole body read. */
export function apiRequest(
  socket: string,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<ApiResult> {
  return new Promise((resolve, reject) => {
    const data =
      body === undefined
        ? undefined
        : Buffer.isBuffer(body)
          ? body
          : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    const req = request(
      {
        socketPath: socket,
        method,
        path,
        headers: {
          ...(data ? { 'Content-Type': 'application/json', 'Content-Length': data.length } : {}),
          ...headers,
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('latin1');
        res.on('data', (d) => {
          text += d;
        });
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: () => JSON.parse(text) }),
        );
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

/**
 * Starts corrald on a private socket, data root and exec root under a temp folder; at cleanup
 * every container it has is removed, the daemon stopped, the folder unmounted and removed.
 */
export async function startDaemon(
  c: Cleanups,
  extra: string[] = [],
  inDir?: string,
  /**
   * The daemon's cwd; `leak`: files it inherits open from fd 40 on without close-on-exec, as
   * from a careless supervisor (opened by a shell that then execs it; Node marks only its low
   * fds close-on-exec at start).
   */
  spawnWith: { cwd?: string; leak?: string[] } = {},
): Promise<Daemon> {
  const dir = inDir ?? c.tempDir('corrald');
  const socket = join(dir, 'corrald.sock');
  const root = join(dir, 'root');
  const execRoot = join(dir, 'exec');
  const dockerConfig = join(dir, 'docker-config');
  const leak = spawnWith.leak ?? [];
  const opens = leak.map((_, i) => `${LEAK_FD + i}<"$${i + 1}"`).join(' ');
  const viaShell = leak.length
    ? ['-c', `exec ${opens}; shift ${leak.length}; exec "$@"`, 'sh', ...leak, process.execPath]
    : [];
  const child = spawn(
    leak.length ? '/bin/bash' : process.execPath,
    [
      ...viaShell,
      CORRALD,
      '-H',
      `unix://${socket}`,
      '--data-root',
      root,
      '--exec-root',
      execRoot,
      '--log-level',
      'debug',
      ...extra,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'], cwd: spawnWith.cwd },
  );
  let log = '';
  child.stderr?.on('data', (d) => {
    log += d;
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  // Last, once the daemon is gone: a network keeps its bridge while it exists, so the bridges
  // and rules of this root's networks (the default one's too) are taken down.
  c.add(async () => {
    if (existsSync(join(root, 'network', 'networks'))) await runCorral(root, ['network', 'down']);
  });
  // Containers the daemon could not remove (it was killed, or never answered again) are removed
  // through the CLI on the same data root: no test leaves one running.
  c.add(async () => {
    const left = containerDirs(root);
    if (left.length) await runCorral(root, ['rm', '-f', ...left]);
  });
  c.add(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await exited;
    }
  });
  c.add(async () => {
    if (child.exitCode !== null || child.signalCode !== null || !existsSync(socket)) return;
    const list = await apiRequest(socket, 'GET', '/containers/json?all=1');
    for (const ct of list.status === 200 ? list.json() : [])
      await apiRequest(socket, 'DELETE', `/containers/${ct.Id}?force=1`);
  });
  // A socket file may be a killed daemon's: wait for one that answers.
  const answers = () =>
    apiRequest(socket, 'GET', '/_ping').then(
      (r) => r.status === 200,
      () => false,
    );
  await until(async () => child.exitCode !== null || (await answers()), 'corrald to listen', 30_000);
  if (child.exitCode !== null) throw new Error(`corrald exited ${child.exitCode}: ${log}`);
  const env = { ...process.env, DOCKER_HOST: `unix://${socket}`, DOCKER_CONFIG: dockerConfig };
  const docker: Daemon['docker'] = (args, opts = {}) =>
    exec(opts.bin ?? '/usr/local/bin/docker', args, { env, input: opts.input });
  return {
    socket,
    root,
    execRoot,
    child,
    log: () => log,
    docker,
    async must(args, opts) {
      const r = await docker(args, opts);
      if (r.status !== 0)
        throw new Error(`docker ${args.join(' ')} exited ${r.status}: ${r.stderr}\n${log.slice(-3000)}`);
      return r;
    },
    api: (method, path, body, headers) => apiRequest(socket, method, path, body, headers),
  };
}

/** Container folders left under a data root. */
export const containerDirs = (root: string): string[] => {
  try {
    return readdirSync(join(root, 'containers'));
  } catch {
    return [];
  }
};

/**
 * A corrald with one stopped container, `maker`, whose /made holds `text`: what the commit,
 * export and import tests start from.
 */
export async function startDaemonWithMaker(c: Cleanups, text: string): Promise<Daemon> {
  const d = await startDaemon(c);
  await d.must([
    'run',
    '--name',
    'maker',
    '--network',
    'none',
    'busybox',
    'sh',
    '-c',
    `echo ${text} > /made`,
  ]);
  return d;
}
