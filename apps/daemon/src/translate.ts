import type { ContainerRecord, CreateContainerOptions, Resources } from '@corral/engine';
import { statusOf } from '@corral/engine';
import { bad } from './http.js';

type Json = Record<string, unknown>;

const isEmpty = (v: unknown): boolean =>
  v === undefined ||
  v === null ||
  v === '' ||
  v === 0 ||
  v === false ||
  (Array.isArray(v) && v.length === 0) ||
  (typeof v === 'object' && !Array.isArray(v) && Object.keys(v as object).length === 0);

/** HostConfig fields that change what a container is and that corral does not do yet. */
const UNSUPPORTED_HOST = [
  'Binds',
  'Mounts',
  'PortBindings',
  'PublishAllPorts',
  'Links',
  'VolumesFrom',
  'Devices',
  'DeviceRequests',
  'DeviceCgroupRules',
  'Dns',
  'DnsOptions',
  'DnsSearch',
  'ExtraHosts',
  'GroupAdd',
  'Tmpfs',
  'Sysctls',
  'Ulimits',
  'StorageOpt',
  'ShmSize',
  'OomScoreAdj',
  'OomKillDisable',
  'KernelMemory',
  'KernelMemoryTCP',
  'MemorySwappiness',
  'BlkioDeviceReadBps',
  'BlkioDeviceWriteBps',
  'BlkioDeviceReadIOps',
  'BlkioDeviceWriteIOps',
  'BlkioWeightDevice',
  'CpuRealtimePeriod',
  'CpuRealtimeRuntime',
  'CpuCount',
  'CpuPercent',
  'IOMaximumIOps',
  'IOMaximumBandwidth',
  'MaskedPaths',
  'ReadonlyPaths',
  'VolumeDriver',
  'Runtime',
  'Isolation',
  'CgroupnsMode',
  'Cgroup',
  'Annotations',
  'ConsoleSize_',
  'Capabilities',
] as const;

/** Config fields corral does not do yet (non-empty values are refused). */
const UNSUPPORTED_CONFIG = ['Volumes', 'Labels', 'Healthcheck', 'OnBuild', 'Shell', 'ArgsEscaped_'] as const;

const MODE_OK: Record<string, string[]> = {
  // The engine's default network only, until the daemon passes networks through.
  NetworkMode: ['', 'default'],
  PidMode: [''],
  IpcMode: ['', 'private', 'shareable'],
  UTSMode: [''],
  UsernsMode: ['', 'host'],
};

const asStrings = (v: unknown, field: string): string[] | undefined => {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') return [v];
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string'))
    throw bad(`${field} must be a list of strings`);
  return v as string[];
};

const num = (v: unknown, field: string): number | undefined => {
  if (v === undefined || v === null || v === 0) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw bad(`${field} must be a number`);
  return v;
};

const str = (v: unknown, field: string): string | undefined => {
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string') throw bad(`${field} must be a string`);
  return v;
};

/**
 * Docker's create body as the engine's options: every field corral does is mapped; a field
 * that would change the container and that corral does not do is a 400 naming it.
 */
export function createOptions(body: Json, name: string | undefined): CreateContainerOptions {
  const host = (body.HostConfig ?? {}) as Json;
  if (typeof host !== 'object' || Array.isArray(host)) throw bad('HostConfig must be an object');
  for (const f of UNSUPPORTED_HOST)
    if (!isEmpty(host[f]) && !(f === 'MemorySwappiness' && host[f] === -1))
      throw bad(`HostConfig.${f} is not supported by corral`);
  for (const f of UNSUPPORTED_CONFIG) if (!isEmpty(body[f])) throw bad(`${f} is not supported by corral`);
  for (const [f, ok] of Object.entries(MODE_OK)) {
    const v = host[f] ?? '';
    if (typeof v !== 'string' || !ok.includes(v))
      throw bad(`HostConfig.${f}=${String(v)} is not supported by corral`);
  }
  const restart = host.RestartPolicy as Json | undefined;
  if (restart && restart.Name && restart.Name !== 'no')
    throw bad(`HostConfig.RestartPolicy ${String(restart.Name)} is not supported by corral`);
  const logConfig = host.LogConfig as Json | undefined;
  if (logConfig?.Type && logConfig.Type !== 'json-file')
    throw bad(`HostConfig.LogConfig.Type ${String(logConfig.Type)} is not supported by corral (json-file)`);
  const endpoints = ((body.NetworkingConfig as Json | undefined)?.EndpointsConfig ?? {}) as Record<
    string,
    Json
  >;
  for (const [net, ep] of Object.entries(endpoints)) {
    if (!MODE_OK.NetworkMode.includes(net))
      throw bad(`NetworkingConfig for network ${net} is not supported by corral`);
    for (const [k, v] of Object.entries(ep ?? {}))
      if (!isEmpty(v)) throw bad(`NetworkingConfig.EndpointsConfig.${net}.${k} is not supported by corral`);
  }
  const image = str(body.Image, 'Image');
  if (!image) throw bad('Config.Image is required');
  const entry = asStrings(body.Entrypoint, 'Entrypoint');
  const cmd = asStrings(body.Cmd, 'Cmd') ?? [];
  let entrypoint: string | undefined;
  let args = cmd;
  if (entry !== undefined && entry.length > 0) {
    entrypoint = entry[0];
    args = [...entry.slice(1), ...cmd];
  } else if (entry !== undefined && body.Entrypoint !== null) entrypoint = '';
  const resources: Resources = {
    memory: num(host.Memory, 'Memory'),
    memorySwap: num(host.MemorySwap, 'MemorySwap'),
    memoryReservation: num(host.MemoryReservation, 'MemoryReservation'),
    cpuShares: num(host.CpuShares, 'CpuShares'),
    cpuPeriod: num(host.CpuPeriod, 'CpuPeriod'),
    cpuQuota: num(host.CpuQuota, 'CpuQuota'),
    nanoCpus: num(host.NanoCpus, 'NanoCpus'),
    cpusetCpus: str(host.CpusetCpus, 'CpusetCpus'),
    cpusetMems: str(host.CpusetMems, 'CpusetMems'),
    pidsLimit: num(host.PidsLimit, 'PidsLimit'),
    blkioWeight: num(host.BlkioWeight, 'BlkioWeight'),
    cgroupParent: str(host.CgroupParent, 'CgroupParent'),
  };
  for (const k of Object.keys(resources) as (keyof Resources)[])
    if (resources[k] === undefined) delete resources[k];
  const stopTimeout = body.StopTimeout;
  return {
    image,
    name: name || undefined,
    cmd: args,
    entrypoint,
    tty: body.Tty === true,
    env: asStrings(body.Env, 'Env'),
    workdir: str(body.WorkingDir, 'WorkingDir'),
    hostname: str(body.Hostname, 'Hostname'),
    user: str(body.User, 'User'),
    stopSignal: str(body.StopSignal, 'StopSignal'),
    stopTimeout: typeof stopTimeout === 'number' ? stopTimeout : undefined,
    autoRemove: host.AutoRemove === true,
    privileged: host.Privileged === true,
    readonlyRootfs: host.ReadonlyRootfs === true,
    init: host.Init === true,
    capAdd: asStrings(host.CapAdd, 'CapAdd'),
    capDrop: asStrings(host.CapDrop, 'CapDrop'),
    securityOpt: asStrings(host.SecurityOpt, 'SecurityOpt'),
    resources,
  };
}

const secs = (iso: string) => Math.floor(Date.parse(iso) / 1000);

/** A row of GET /containers/json. */
export function summaryJson(r: ContainerRecord, status: string): Json {
  return {
    Id: r.id,
    Names: [`/${r.name}`],
    Image: r.image,
    ImageID: r.imageId ?? '',
    Command: r.config.cmd.join(' '),
    Created: secs(r.created),
    Ports: [],
    Labels: {},
    State: statusOf(r),
    Status: status,
    HostConfig: { NetworkMode: 'default' },
    NetworkSettings: { Networks: {} },
    Mounts: [],
  };
}

const ZERO_TIME = '0001-01-01T00:00:00Z';

/** GET /containers/{id}/json: Docker's shape for the fields corral has. */
export function inspectJson(r: ContainerRecord & { cgroupPath: string }, logPath: string): Json {
  const s = r.state;
  const res = r.hostConfig.resources;
  return {
    Id: r.id,
    Created: r.created,
    Path: r.config.cmd[0] ?? '',
    Args: r.config.cmd.slice(1),
    State: {
      Status: statusOf(r),
      Running: s.status === 'running',
      Paused: s.paused,
      Restarting: false,
      OOMKilled: s.oomKilled,
      Dead: false,
      Pid: s.pid,
      ExitCode: s.exitCode ?? 0,
      Error: s.error ?? '',
      StartedAt: s.startedAt ?? ZERO_TIME,
      FinishedAt: s.finishedAt ?? ZERO_TIME,
    },
    Image: r.imageId ?? '',
    ResolvConfPath: '',
    HostnamePath: '',
    HostsPath: '',
    LogPath: logPath,
    Name: `/${r.name}`,
    RestartCount: 0,
    Driver: r.hostConfig.storageDriver,
    Platform: 'linux',
    MountLabel: '',
    ProcessLabel: '',
    AppArmorProfile: '',
    ExecIDs: null,
    HostConfig: {
      AutoRemove: r.hostConfig.autoRemove,
      Privileged: r.hostConfig.privileged,
      ReadonlyRootfs: r.hostConfig.readonlyRootfs,
      CapAdd: r.hostConfig.capAdd,
      CapDrop: r.hostConfig.capDrop,
      SecurityOpt: [
        ...(r.hostConfig.seccomp === 'unconfined' ? ['seccomp=unconfined'] : []),
        ...(r.hostConfig.noNewPrivileges ? ['no-new-privileges'] : []),
      ],
      Init: r.config.init,
      NetworkMode: 'default',
      RestartPolicy: { Name: 'no', MaximumRetryCount: 0 },
      LogConfig: { Type: 'json-file', Config: {} },
      CgroupParent: res.cgroupParent ?? '',
      Memory: res.memory ?? 0,
      MemorySwap: res.memorySwap ?? 0,
      MemoryReservation: res.memoryReservation ?? 0,
      NanoCpus: res.nanoCpus ?? 0,
      CpuShares: res.cpuShares ?? 0,
      CpuPeriod: res.cpuPeriod ?? 0,
      CpuQuota: res.cpuQuota ?? 0,
      CpusetCpus: res.cpusetCpus ?? '',
      CpusetMems: res.cpusetMems ?? '',
      PidsLimit: res.pidsLimit ?? null,
      BlkioWeight: res.blkioWeight ?? 0,
      Binds: null,
      PortBindings: {},
    },
    GraphDriver: { Name: r.hostConfig.storageDriver, Data: null },
    Mounts: [],
    Config: {
      Hostname: r.config.hostname,
      Domainname: '',
      User: r.config.user,
      AttachStdin: false,
      AttachStdout: false,
      AttachStderr: false,
      Tty: r.config.tty,
      OpenStdin: false,
      StdinOnce: false,
      Env: r.config.env,
      Cmd: r.config.cmd,
      Image: r.image,
      Volumes: null,
      WorkingDir: r.config.workdir,
      Entrypoint: null,
      OnBuild: null,
      Labels: {},
      StopSignal: r.config.stopSignal,
      StopTimeout: r.config.stopTimeout,
    },
    NetworkSettings: { Networks: {}, Ports: {}, SandboxKey: '', IPAddress: '', Gateway: '', MacAddress: '' },
    CorralCgroupPath: r.cgroupPath,
  };
}
