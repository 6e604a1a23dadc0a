// Spawning a container's keeper (keeper.ts), apart from the client that speaks to it
// (keeper-client.ts): a front-end can start one as its very first act, before it loads
// anything else, and hand the process to a KeeperClient later (the CLI's early entry does for
// `run`). Loads node:child_process and nothing of corral's.
import { type ChildProcess, type StdioOptions, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { KeeperMode } from './keeper-protocol.js';

// The bundle the build makes (one file: a faster start, scripts/bundle.mjs), else the module
// beside this one; from the sources (the engine's own tests), the built ones.
const keeperScript = [
  './bundle/keeper.cjs',
  './bundle/keeper.mjs',
  './keeper.js',
  '../dist/bundle/keeper.cjs',
  '../dist/bundle/keeper.mjs',
  '../dist/keeper.js',
]
  .map((rel) => fileURLToPath(new URL(rel, import.meta.url)))
  .find((p) => existsSync(p)) as string;

/**
 * A keeper lives as long as its container. One V8 helper thread; a small young generation
 * (without it, a keeper that logged 200,000 lines kept 48 MiB); `gc` for the collection after
 * a burst of output (keeper-trim.ts). Measured: bench/daemon/keeper-memory.mjs.
 */
export const KEEPER_NODE_FLAGS = ['--v8-pool-size=1', '--max-semi-space-size=1', '--expose-gc'];

/** What the container's program gets as 0, 1 and 2 from an `attached` keeper. */
export type KeeperStdio = ('pipe' | 'ignore' | 'inherit' | number)[];

/**
 * Spawns a keeper, which starts its init at once. `stdio` is what the program gets in
 * `attached` mode (fds of this process, 'ignore', or 'pipe'); other modes get none. Fds 3
 * and 4 are the control and sync sockets (keeper-protocol.ts).
 */
export function spawnKeeper(
  mode: KeeperMode,
  stdio: KeeperStdio = ['ignore', 'ignore', 'ignore'],
  errorLog?: number,
  /** Starts no init: see KeeperClient.run (attached and detached modes). */
  fast = false,
): ChildProcess {
  const io = mode === 'attached' ? stdio : ['ignore', 'ignore', errorLog ?? 'ignore'];
  // Its own session: a ^C on the front-end's terminal reaches the program through the
  // front-end (sig-proxy), never the keeper.
  return spawn(process.execPath, [...KEEPER_NODE_FLAGS, keeperScript, mode, ...(fast ? ['fast'] : [])], {
    detached: true,
    // It may live long (parked in corrald's pool, then as long as its container): it pins no
    // folder, and its init starts nowhere but / (keeper-pool.ts).
    cwd: '/',
    stdio: [...io, 'pipe', 'pipe'] as StdioOptions,
    env: keeperEnv(),
  });
}

/**
 * The front-end's environment (PATH for the network's tools when the keeper restarts its
 * container) without NODE_EXTRA_CA_CERTS: Node parses that file at every start (about 40 ms
 * here, on the run's critical path) and a keeper makes no TLS connection.
 */
export function keeperEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const { NODE_EXTRA_CA_CERTS: _, ...rest } = env;
  return { ...rest, UV_THREADPOOL_SIZE: '1' };
}

/**
 * Spawns a shared keeper (keeper-host.ts) that listens in `dir` (a folder only root may enter)
 * and says where on its fd 3; its stderr goes to `errorLog`.
 */
export function spawnKeeperHost(dir: string, errorLog: number): ChildProcess {
  return spawn(process.execPath, [...KEEPER_NODE_FLAGS, keeperScript, 'host', dir], {
    detached: true,
    cwd: '/',
    stdio: ['ignore', 'ignore', errorLog, 'pipe'],
    env: keeperEnv(),
  });
}
