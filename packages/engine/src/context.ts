import { join, resolve } from 'node:path';
import { ImageStore, type ImageUser, privateDir } from '@corral/image';
import type { NetworkManager } from '@corral/network';
import { Runtime } from '@corral/runtime';
import { Snapshotter } from '@corral/unionfs';
import { EventLog } from './events.js';
import { KeeperPool } from './keeper-pool.js';
import { type NetworkSettings, networkManager } from './network-config.js';
import { RecordStore, runtimeStatus } from './records.js';

/** The data root: `--root`, then CORRAL_ROOT, then /var/lib/corral (like Docker's data-root). */
export function defaultRoot(): string {
  return process.env.CORRAL_ROOT || '/var/lib/corral';
}

/** Registry settings, engine configuration as in dockerd's daemon.json. */
export interface RegistrySettings {
  /** Registries (`host` or `host:port`) reached over plain HTTP (loopback ones always are). */
  insecureRegistries?: string[];
  /** Docker-style config.json with credentials (default `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`). */
  credentialsFile?: string;
  /**
   * A PEM file of CA certificates trusted besides Node's own, for a front-end started without
   * NODE_EXTRA_CA_CERTS that names it (the corral CLI's bin drops the variable).
   */
  extraCaFile?: string;
}

export interface EngineOptions {
  root?: string;
  registry?: RegistrySettings;
  /** dockerd's network switches (iptables, ip-forward, ip-masq) and the address pool. */
  network?: NetworkSettings;
  /** Set by a long-lived front-end (corrald): see ResidentOptions. */
  resident?: ResidentOptions;
  /**
   * Engine.open's clean-up of what interrupted runs left: 'always' (the default, for
   * commands that change state), 'if-needed' (only when it would change a listing: `ps`),
   * 'never' (`images`). What is skipped is done by the next engine opened with it.
   */
  reclaim?: 'always' | 'if-needed' | 'never';
}

/**
 * A front-end that lives long (a daemon) stays the front-end of the containers it starts in
 * the background: it hears their exit from their keeper and records it itself, with the
 * engine it has loaded (a keeper left alone loads the engine to do it); the keeper takes over
 * if this process dies. It may also keep keepers started ahead (keeper-pool.ts).
 */
export interface ResidentOptions {
  /** Keepers kept started ahead of need (default 0). */
  poolSize?: number;
  /** Each parked with its container's init started (keeper-pool.ts; default false). */
  poolInits?: boolean;
  /**
   * Containers one keeper process keeps at most (keeper-host.ts; default 16; 1: a keeper of
   * their own each, as without a pool). Not with poolInits.
   */
  containersPerKeeper?: number;
  /**
   * The parent of the cgroups of containers that name none (a daemon's --cgroup-parent), where
   * the pool parks its inits (keeper-parking.ts). Default: this process's own cgroup.
   */
  cgroupParent?: string;
}

/**
 * What the engine's parts share inside one process: the stores and the runtime. Not exported
 * from the package: front-ends see only the Engine's methods.
 */
export class EngineContext {
  readonly root: string;
  readonly records: RecordStore;
  readonly runtime: Runtime;
  readonly store: ImageStore;
  readonly events: EventLog;
  readonly registry: RegistrySettings;
  readonly #network: NetworkSettings;
  #net: NetworkManager | undefined;
  /**
   * Networks, namespaces and attachments under ROOT/network: made on first use, so that a
   * command that touches no network (`ps`, `images`) neither hashes the root (node:crypto)
   * nor reads the kept switches.
   */
  get net(): NetworkManager {
    this.#net ??= networkManager(this.root, this.#network, this.root === '/var/lib/corral');
    return this.#net;
  }
  /** Containers whose root this process is unmounting on purpose (not a storage failure). */
  readonly releasing = new Set<string>();
  /** This process stays the front-end of the containers it starts detached (ResidentOptions). */
  readonly resident: boolean;
  /** Keepers started ahead (Engine.open starts it when asked). */
  pool: KeeperPool | null = null;

  constructor(options: EngineOptions = {}) {
    this.root = resolve(options.root ?? defaultRoot());
    // The root and every state folder in it are 0700, also in a root an older version made
    // 0711/0755: no container needs to walk them, and other users must not (see the image
    // package's state-dir.ts for why nothing needs more).
    privateDir(this.root);
    this.records = new RecordStore(this.root);
    this.store = new ImageStore(join(this.root, 'image'), { users: (id) => this.imageUsers(id) });
    privateDir(join(this.root, 'runtime'));
    this.runtime = new Runtime({ root: join(this.root, 'runtime') });
    this.events = new EventLog(this.root);
    this.registry = options.registry ?? {};
    this.#network = options.network ?? {};
    // Switches given on the command line are kept in the root by any command, as before.
    if (Object.values(this.#network).some((v) => v !== undefined)) void this.net;
    this.resident = options.resident !== undefined;
  }

  /** Starts the pool of keepers (a resident front-end's, after the root is reclaimed). */
  startPool(o: ResidentOptions): void {
    const size = o.poolSize ?? 0;
    if (size <= 0 || this.pool) return;
    this.pool = new KeeperPool(size, {
      errorLog: join(this.root, 'keeper-pool.log'),
      cgroupParent: o.cgroupParent,
      inits: o.poolInits,
      shared: { perKeeper: o.containersPerKeeper ?? 16, socketDir: join(this.root, 'keepers') },
    });
  }

  /**
   * The containers made from an image, for the store's rules on images in use: one whose
   * process lives (running, paused, or being started) or that is restarting is a running user.
   */
  imageUsers(imageId: string): ImageUser[] {
    const users: ImageUser[] = [];
    for (const id of this.records.ids()) {
      let r: ReturnType<RecordStore['read']>;
      try {
        r = this.records.read(id);
      } catch {
        continue; // damaged: `system check` reports it
      }
      if (r?.imageId !== imageId) continue;
      // Restarting (between two runs of a restart policy) counts as running, as in Docker.
      const running = r.state.restarting === true || runtimeStatus(this.runtime, id) !== 'exited';
      users.push({ id, running });
    }
    return users;
  }

  logPath(id: string): string {
    return join(this.records.dir(id), `${id}-json.log`);
  }

  /**
   * The snapshots of containers made with a storage driver: each container's folder holds its
   * writable layer (upper/, work/); the image store keeps the read-only layers. The engine
   * reaches storage only through it (prepare, mounts, view, unmount, cleanup); `cleanup` takes
   * unions of any backend off, so a caller without a record's driver may leave it out.
   */
  snapshots(driver = 'overlay'): Snapshotter {
    return new Snapshotter((id) => this.records.dir(id), driver);
  }

  rootfs(id: string): string {
    return join(this.records.dir(id), 'rootfs');
  }
}
