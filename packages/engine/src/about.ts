// What `docker version` and `docker info` show, once for both front-ends: the CLI prints it
// (`corral version`, `corral info`), corrald answers /version and /info with it. version()
// opens nothing (no data root, no koffi): `corral version` costs a Node start and a few reads.
import { readFileSync } from 'node:fs';
import { arch, cpus, hostname, machine, release, totalmem } from 'node:os';
import { type CgroupMode, detectCgroupMode } from '@corral/cgroups';

/** The Docker Engine API version corral speaks (corrald), and the oldest it accepts. */
export const API_VERSION = '1.47';
export const MIN_API_VERSION = '1.24';
/** The storage driver of containers that name none (`--storage-driver`). */
export const DEFAULT_STORAGE_DRIVER = 'overlay';
const RUNTIME = 'corral-runtime';

/** The engine's own version, from its package.json (beside dist/ or src/). */
function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
    return typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    return 'unknown';
  }
}

/** Docker's spelling of the architecture (GOARCH). */
export const dockerArch = (): string => ({ x64: 'amd64', ia32: '386' })[arch()] ?? arch();

/** The cgroup version as Docker says it ('1' on v1 and hybrid hosts, '2'), with the mode. */
function cgroupVersion(): { version: string; mode: CgroupMode | 'none' } {
  try {
    const mode = detectCgroupMode();
    return { version: mode === 'v2' ? '2' : '1', mode };
  } catch {
    return { version: '', mode: 'none' };
  }
}

export interface EngineVersion {
  version: string;
  apiVersion: string;
  minApiVersion: string;
  node: string;
  os: 'linux';
  arch: string;
  kernelVersion: string;
  /** '1' or '2' (Docker's CgroupVersion); mode: v1, v2 or hybrid (v1 controllers, a v2 mount). */
  cgroupVersion: string;
  cgroupMode: CgroupMode | 'none';
  cgroupDriver: 'cgroupfs';
  storageDriver: string;
  runtime: string;
}

/** `docker version`'s server half: what this engine is and runs on. */
export function engineVersion(): EngineVersion {
  const cg = cgroupVersion();
  return {
    version: packageVersion(),
    apiVersion: API_VERSION,
    minApiVersion: MIN_API_VERSION,
    node: process.version,
    os: 'linux',
    arch: dockerArch(),
    kernelVersion: release(),
    cgroupVersion: cg.version,
    cgroupMode: cg.mode,
    cgroupDriver: 'cgroupfs',
    storageDriver: DEFAULT_STORAGE_DRIVER,
    runtime: RUNTIME,
  };
}

export interface EngineInfo extends EngineVersion {
  containers: number;
  containersRunning: number;
  containersPaused: number;
  containersStopped: number;
  images: number;
  /** The storage drivers containers can name, the default first. */
  storageDrivers: string[];
  runtimes: string[];
  defaultRuntime: string;
  dataRoot: string;
  /** uname's machine (x86_64), as docker info's Architecture. */
  architecture: string;
  name: string;
  ncpu: number;
  memTotal: number;
  /** What the host lacks or does differently, as sentences (Docker's Warnings). */
  warnings: string[];
}

/** Containers by state as `list({ all: true })` and the image count fill them in. */
export function engineInfo(
  root: string,
  containers: readonly { state: string; paused?: boolean }[],
  images: number,
): EngineInfo {
  const v = engineVersion();
  const running = containers.filter((c) => c.state === 'running');
  const paused = running.filter((c) => c.paused).length;
  const warnings: string[] = [];
  if (v.cgroupMode === 'hybrid')
    warnings.push('cgroups are in hybrid mode: limits use the v1 controllers (the v2 mount has none)');
  if (v.cgroupMode === 'none') warnings.push('no cgroup filesystem is mounted: limits cannot be applied');
  return {
    ...v,
    containers: containers.length,
    containersRunning: running.length - paused,
    containersPaused: paused,
    containersStopped: containers.length - running.length,
    images,
    storageDrivers: [DEFAULT_STORAGE_DRIVER, 'fuse'],
    runtimes: [RUNTIME],
    defaultRuntime: RUNTIME,
    dataRoot: root,
    architecture: machine(),
    name: hostname(),
    ncpu: cpus().length,
    memTotal: totalmem(),
    warnings,
  };
}
