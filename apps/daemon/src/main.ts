import {
  chmodSync,
  chownSync,
  closeSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import type { Server } from 'node:http';
import { dirname, join, resolve } from 'node:path';
import { Engine } from '@corral/engine';
import { flock, LOCK } from '@corral/sys';
import { ConfigError, type DaemonConfig, parseConfig, usage } from './config.js';
import { createLogger } from './log.js';
import { VERSION } from './routes/system.js';
import { createDaemonServer } from './server.js';

/** A group's id from its name or number (/etc/group). */
function groupId(group: string): number {
  if (/^\d+$/.test(group)) return Number(group);
  for (const line of readFileSync('/etc/group', 'utf8').split('\n')) {
    const [name, , gid] = line.split(':');
    if (name === group) return Number(gid);
  }
  throw new ConfigError(`group ${group} not found`);
}

/**
 * One corrald per data root: an exclusive flock on DATA_ROOT/corrald.lock, held for the
 * daemon's life (the kernel drops it when the process dies, also by SIGKILL).
 */
function lockRoot(root: string): number {
  mkdirSync(root, { recursive: true, mode: 0o700 });
  const fd = openSync(join(root, 'corrald.lock'), 'a', 0o600);
  if (!flock(fd, LOCK.EX | LOCK.NB)) {
    closeSync(fd);
    let pid = '';
    try {
      pid = readFileSync(join(root, 'corrald.lock.pid'), 'utf8').trim();
    } catch {}
    throw new ConfigError(`another corrald${pid ? ` (pid ${pid})` : ''} is using the data root ${root}`);
  }
  writeFileSync(join(root, 'corrald.lock.pid'), `${process.pid}\n`, { mode: 0o600 });
  return fd;
}

/** Listens on a unix socket made 0660 from the start (umask), owned by root and `gid`. */
function listen(server: Server, path: string, gid: number): Promise<void> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o711 });
  rmSync(path, { force: true }); // a stale socket: the root lock says no daemon serves it
  const old = process.umask(0o117);
  return new Promise<void>((res, rej) => {
    server.once('error', rej);
    server.listen(path, () => {
      process.umask(old);
      chownSync(path, 0, gid);
      chmodSync(path, 0o660);
      res();
    });
  });
}

async function main(argv: string[]): Promise<number> {
  let config: DaemonConfig;
  try {
    const c = parseConfig(argv);
    if (c === 'help') {
      process.stdout.write(usage());
      return 0;
    }
    if (c === 'version') {
      process.stdout.write(`corrald version ${VERSION}\n`);
      return 0;
    }
    config = c;
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`corrald: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
  if (process.getuid?.() !== 0) {
    process.stderr.write('corrald: must run as root\n');
    return 1;
  }
  const log = createLogger(config.logLevel);
  const dataRoot = resolve(config.dataRoot);
  const gid = config.group ? groupId(config.group) : 0;
  let lockFd: number;
  try {
    lockFd = lockRoot(dataRoot);
  } catch (e) {
    process.stderr.write(`corrald: ${(e as Error).message}\n`);
    return 1;
  }
  mkdirSync(config.execRoot, { recursive: true, mode: 0o700 });
  writeFileSync(config.pidfile, `${process.pid}\n`, { mode: 0o644 });
  const engine = await Engine.open({
    root: dataRoot,
    registry: { insecureRegistries: config.insecureRegistries },
    // dockerd's switches, kept with the data root for the keepers and CLI commands on it.
    network: { iptables: config.iptables, ipForward: config.ipForward, ipMasq: config.ipMasq },
    // Long-lived: it records the exits of the containers it starts, and keeps keepers ahead.
    resident: {
      poolSize: config.poolSize,
      poolInits: config.poolInits,
      containersPerKeeper: config.containersPerKeeper,
      cgroupParent: config.cgroupParent,
    },
  });
  const server = createDaemonServer({
    engine,
    log,
    info: {
      dataRoot,
      execRoot: resolve(config.execRoot),
      cgroupParent: config.cgroupParent,
      insecureRegistries: config.insecureRegistries,
    },
  });
  const sockets = config.hosts.map((h) => resolve(h.slice('unix://'.length)));
  for (const s of sockets) await listen(server, s, gid);
  log.info(`API listen on ${sockets.join(', ')}`);
  const stop = async (sig: string) => {
    log.info(`${sig}: shutting down (containers keep running)`);
    server.close();
    for (const s of sockets) rmSync(s, { force: true });
    // The pool's parked keepers and inits go (they would also end with us, a moment later).
    await engine.close().catch((e) => log.warn(`closing the pool: ${(e as Error).message}`));
    rmSync(config.pidfile, { force: true });
    closeSync(lockFd);
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  return new Promise<number>(() => {}); // runs until signalled
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`corrald: ${(e as Error)?.stack ?? e}\n`);
    process.exit(1);
  },
);
