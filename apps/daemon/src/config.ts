import { existsSync, readFileSync } from 'node:fs';
import { isLogLevel, type LogLevel } from './log.js';

/** corrald's settings: dockerd's flags and daemon.json keys where they apply. */
export interface DaemonConfig {
  hosts: string[];
  group?: string;
  dataRoot: string;
  execRoot: string;
  pidfile: string;
  cgroupParent?: string;
  insecureRegistries: string[];
  logLevel: LogLevel;
  poolSize: number;
  /** Park each pooled keeper with its container's init started (keeper-pool.ts). */
  poolInits: boolean;
  /** Containers one keeper process keeps at most (keeper-host.ts); 1: a keeper each. */
  containersPerKeeper: number;
  /** dockerd's iptables, ip-forward and ip-masq (corral's defaults: true, false, false). */
  iptables: boolean;
  ipForward: boolean;
  ipMasq: boolean;
}

export const DEFAULT_SOCKET = '/run/corral/corral.sock';
export const DEFAULT_CONFIG_FILE = '/etc/corral/daemon.json';
/** Keepers started ahead: enough for a burst of two; each parked one costs a Node process (two with --pool-inits). */
export const DEFAULT_POOL_SIZE = 2;
const MAX_POOL_SIZE = 64;
/** Containers a shared keeper keeps: about 1 MiB each for its memory, and no more killed with it. */
export const DEFAULT_CONTAINERS_PER_KEEPER = 16;
const MAX_CONTAINERS_PER_KEEPER = 256;

export class ConfigError extends Error {}

const USAGE = `Usage: corrald [OPTIONS]

The Docker Engine API for corral on a unix socket.

Options:
  -H, --host unix://PATH        Socket to listen on (default unix://${DEFAULT_SOCKET})
  -G, --group GROUP             Group that may use the socket (default: root only)
      --data-root DIR           corral's data root (default CORRAL_ROOT or /var/lib/corral)
      --exec-root DIR           Daemon run state (default /run/corral)
  -p, --pidfile FILE            Pid file (default EXEC_ROOT/corrald.pid)
      --cgroup-parent PATH      Parent cgroup of containers that name none
      --insecure-registry HOST  A registry reached over plain HTTP (repeatable)
  -l, --log-level LEVEL         debug, info, warn, error, fatal (default info)
      --pool-size N             Keepers kept started ahead (default 2)
      --pool-inits[=BOOL]       Park each with its container's init started: a faster start for
                                terminals, --init and -i, a Node start more per refill (default false)
      --containers-per-keeper N Containers one keeper process keeps at most: less memory each, more
                                of them killed with it if it is (default ${DEFAULT_CONTAINERS_PER_KEEPER}; 1: a keeper each)
      --iptables[=BOOL]         Add iptables rules: published ports, isolation (default true)
      --ip-forward[=BOOL]       Turn on net.ipv4.ip_forward (default false: no host sysctl changed)
      --ip-masq[=BOOL]          Masquerade traffic leaving the bridges (default false: no NAT rule)
      --config-file FILE        daemon.json (default ${DEFAULT_CONFIG_FILE} when present)
`;

export function usage(): string {
  return USAGE;
}

const KEYS: Record<string, keyof DaemonConfig> = {
  hosts: 'hosts',
  group: 'group',
  'data-root': 'dataRoot',
  'exec-root': 'execRoot',
  pidfile: 'pidfile',
  'cgroup-parent': 'cgroupParent',
  'insecure-registries': 'insecureRegistries',
  'log-level': 'logLevel',
  'pool-size': 'poolSize',
  'pool-inits': 'poolInits',
  'containers-per-keeper': 'containersPerKeeper',
  iptables: 'iptables',
  'ip-forward': 'ipForward',
  'ip-masq': 'ipMasq',
};

const SWITCH_FLAGS: Record<string, 'iptables' | 'ipForward' | 'ipMasq' | 'poolInits'> = {
  '--iptables': 'iptables',
  '--ip-forward': 'ipForward',
  '--ip-masq': 'ipMasq',
  '--pool-inits': 'poolInits',
};

/** A switch's value: dockerd's `--flag`, `--flag=true|false`, or a daemon.json boolean. */
function switchValue(name: string, v: unknown): boolean {
  if (v === undefined || v === true || v === 'true') return true;
  if (v === false || v === 'false') return false;
  throw new ConfigError(`invalid value ${JSON.stringify(v)} for ${name}: true or false`);
}

/** Flags first, then the config file; a setting in both is an error, as dockerd makes it. */
export function parseConfig(argv: string[], env = process.env): DaemonConfig | 'help' | 'version' {
  const flags: Partial<DaemonConfig> & { configFile?: string } = {};
  const hosts: string[] = [];
  const insecure: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    let a = argv[i];
    let value: string | undefined;
    if (a.startsWith('--') && a.includes('=')) {
      value = a.slice(a.indexOf('=') + 1);
      a = a.slice(0, a.indexOf('='));
    }
    const next = () => {
      if (value !== undefined) return value;
      const v = argv[++i];
      if (v === undefined) throw new ConfigError(`${a} needs a value`);
      return v;
    };
    switch (a) {
      case '-h':
      case '--help':
        return 'help';
      case '-v':
      case '--version':
        return 'version';
      case '-H':
      case '--host':
        hosts.push(next());
        break;
      case '-G':
      case '--group':
        flags.group = next();
        break;
      case '--data-root':
        flags.dataRoot = next();
        break;
      case '--exec-root':
        flags.execRoot = next();
        break;
      case '-p':
      case '--pidfile':
        flags.pidfile = next();
        break;
      case '--cgroup-parent':
        flags.cgroupParent = next();
        break;
      case '--insecure-registry':
        insecure.push(next());
        break;
      case '-l':
      case '--log-level':
        flags.logLevel = next() as DaemonConfig['logLevel'];
        break;
      case '--pool-size':
        flags.poolSize = Number(next());
        break;
      case '--containers-per-keeper':
        flags.containersPerKeeper = Number(next());
        break;
      case '--config-file':
        flags.configFile = next();
        break;
      case '--iptables':
      case '--ip-forward':
      case '--ip-masq':
      case '--pool-inits':
        // Booleans, as dockerd's: a value only after `=` (`--ip-masq=false`).
        flags[SWITCH_FLAGS[a]] = switchValue(a, value);
        break;
      default:
        throw new ConfigError(`unknown flag: ${a}`);
    }
  }
  if (hosts.length) flags.hosts = hosts;
  if (insecure.length) flags.insecureRegistries = insecure;
  const file = flags.configFile ?? (existsSync(DEFAULT_CONFIG_FILE) ? DEFAULT_CONFIG_FILE : undefined);
  delete flags.configFile;
  const fromFile: Partial<DaemonConfig> = {};
  if (file) {
    let json: Record<string, unknown>;
    try {
      json = JSON.parse(readFileSync(file, 'utf8'));
    } catch (e) {
      throw new ConfigError(
        `config file ${file} is not valid JSON (${(e as Error).message}): fix or remove it`,
      );
    }
    if (!json || typeof json !== 'object' || Array.isArray(json))
      throw new ConfigError(`config file ${file}: not a JSON object`);
    for (const [k, v] of Object.entries(json)) {
      const key = KEYS[k];
      if (!key) throw new ConfigError(`config file ${file}: unknown setting ${k}`);
      if (flags[key] !== undefined)
        throw new ConfigError(
          `the following directives are specified both as a flag and in the configuration file: ${k}`,
        );
      (fromFile as Record<string, unknown>)[key] = v;
    }
  }
  const merged = { ...fromFile, ...flags };
  const execRoot = merged.execRoot ?? '/run/corral';
  const config: DaemonConfig = {
    hosts: merged.hosts ?? [`unix://${DEFAULT_SOCKET}`],
    group: merged.group,
    dataRoot: merged.dataRoot ?? (env.CORRAL_ROOT || '/var/lib/corral'),
    execRoot,
    pidfile: merged.pidfile ?? `${execRoot}/corrald.pid`,
    cgroupParent: merged.cgroupParent,
    insecureRegistries: merged.insecureRegistries ?? [],
    logLevel: merged.logLevel ?? 'info',
    poolSize: merged.poolSize ?? DEFAULT_POOL_SIZE,
    poolInits: switchValue('pool-inits', merged.poolInits ?? false),
    containersPerKeeper: merged.containersPerKeeper ?? DEFAULT_CONTAINERS_PER_KEEPER,
    iptables: switchValue('iptables', merged.iptables ?? true),
    ipForward: switchValue('ip-forward', merged.ipForward ?? false),
    ipMasq: switchValue('ip-masq', merged.ipMasq ?? false),
  };
  if (!isLogLevel(config.logLevel)) throw new ConfigError(`invalid log level ${config.logLevel}`);
  if (!Number.isInteger(config.poolSize) || config.poolSize < 0)
    throw new ConfigError(`invalid pool size ${config.poolSize}`);
  if (config.poolSize > MAX_POOL_SIZE)
    throw new ConfigError(
      `invalid pool size ${config.poolSize}: at most ${MAX_POOL_SIZE} (each costs a keeper)`,
    );
  const perKeeper = config.containersPerKeeper;
  if (!Number.isInteger(perKeeper) || perKeeper < 1 || perKeeper > MAX_CONTAINERS_PER_KEEPER)
    throw new ConfigError(
      `invalid containers per keeper ${perKeeper}: a whole number from 1 to ${MAX_CONTAINERS_PER_KEEPER}`,
    );
  for (const h of config.hosts)
    if (!h.startsWith('unix://') || h.length <= 'unix://'.length)
      throw new ConfigError(`invalid host ${h}: corrald listens only on unix://PATH sockets`);
  return config;
}
