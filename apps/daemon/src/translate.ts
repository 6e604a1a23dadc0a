import type { ContainerRecord, CreateContainerOptions, MountView, Resources } from '@corral/engine';

type PortMapping = { hostIP: string; hostPort: number; containerPort: number; protocol: string };
type NetView = {
  mode: string;
  networks: Record<
    string,
    { ip: string | null; mac: string | null; gateway: string | null; aliases: string[] }
  >;
  ports: PortMapping[];
};

import { statusOf } from '@corral/engine';
import { bad } from './http.js';
import { mountFieldsJson, mountOptionsOf } from './mounts.js';
import { configRunJson, healthJson, hostRunJson, runSettingsOf } from './translate-run.js';

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
  'Links',
  'DeviceRequests',
  'DeviceCgroupRules',
  'StorageOpt',
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
  'Runtime',
  'Isolation',
  'CgroupnsMode',
  'Cgroup',
  'Annotations',
  'ConsoleSize_',
  'Capabilities',
] as const;

/** Config fields corral does not do yet (non-empty values are refused). */
const UNSUPPORTED_CONFIG = ['OnBuild', 'Shell', 'ArgsEscaped_'] as const;

const MODE_OK: Record<string, string[]> = {
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
  // Applied by the container's keeper (the engine checks the name and count: a 400 when bad).
  const restart = host.RestartPolicy as Json | undefined;
  const network = networkOptions(host, (body.NetworkingConfig as Json | undefined)?.EndpointsConfig);
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
    openStdin: body.OpenStdin === true,
    stdinOnce: body.StdinOnce === true,
    env: asStrings(body.Env, 'Env'),
    workdir: str(body.WorkingDir, 'WorkingDir'),
    hostname: str(body.Hostname, 'Hostname'),
    user: str(body.User, 'User'),
    stopSignal: str(body.StopSignal, 'StopSignal'),
    stopTimeout: typeof stopTimeout === 'number' ? stopTimeout : undefined,
    autoRemove: host.AutoRemove === true,
    ...(restart?.Name
      ? {
          restart: {
            name: String(restart.Name),
            maximumRetryCount: Number(restart.MaximumRetryCount ?? 0),
          },
        }
      : {}),
    privileged: host.Privileged === true,
    readonlyRootfs: host.ReadonlyRootfs === true,
    init: host.Init === true,
    capAdd: asStrings(host.CapAdd, 'CapAdd'),
    capDrop: asStrings(host.CapDrop, 'CapDrop'),
    securityOpt: asStrings(host.SecurityOpt, 'SecurityOpt'),
    resources,
    ...network,
    ...mountOptionsOf(body, host),
    ...runSettingsOf(host, body),
  };
}

/** Docker's PortBindings (`"80/tcp": [{HostIp, HostPort}]`) as the engine's `-p` strings. */
function publishOf(bindings: unknown): string[] {
  if (bindings === undefined || bindings === null) return [];
  if (typeof bindings !== 'object' || Array.isArray(bindings))
    throw bad('HostConfig.PortBindings must be an object');
  const out: string[] = [];
  for (const [port, list] of Object.entries(bindings as Record<string, unknown>)) {
    const [ctr, proto = 'tcp'] = port.split('/');
    for (const b of (Array.isArray(list) ? list : []) as Json[]) {
      const ip = typeof b?.HostIp === 'string' && b.HostIp ? `${b.HostIp}:` : '';
      const hostPort = typeof b?.HostPort === 'string' ? b.HostPort : '';
      out.push(`${ip}${hostPort}:${ctr}/${proto}`);
    }
  }
  return out;
}

/** NetworkMode, ports, DNS and the one endpoint's settings as the engine's network options. */
function networkOptions(host: Json, endpointsRaw: unknown): Partial<CreateContainerOptions> {
  const mode = str(host.NetworkMode, 'NetworkMode');
  const network = mode && mode !== 'default' ? mode : undefined;
  const out: Partial<CreateContainerOptions> = {
    network,
    publish: publishOf(host.PortBindings),
    publishAll: host.PublishAllPorts === true,
    dns: asStrings(host.Dns, 'Dns'),
    dnsSearch: asStrings(host.DnsSearch, 'DnsSearch'),
    dnsOptions: asStrings(host.DnsOptions, 'DnsOptions'),
    addHost: asStrings(host.ExtraHosts, 'ExtraHosts'),
  };
  const endpoints = (endpointsRaw ?? {}) as Record<string, Json>;
  for (const [net, ep] of Object.entries(endpoints)) {
    if (net !== (mode || 'default') && net !== network)
      throw bad(
        `NetworkingConfig for network ${net}: only the container's NetworkMode (${mode || 'default'})`,
      );
    for (const [k, v] of Object.entries(ep ?? {})) {
      if (isEmpty(v)) continue;
      if (k === 'Aliases') out.networkAliases = asStrings(v, 'Aliases');
      else if (k === 'MacAddress') out.macAddress = str(v, 'MacAddress');
      else if (
        k === 'IPAMConfig' &&
        Object.keys(v as Json).every((x) => x === 'IPv4Address' || isEmpty((v as Json)[x]))
      )
        out.ip = str((v as Json).IPv4Address, 'IPv4Address');
      else throw bad(`NetworkingConfig.EndpointsConfig.${net}.${k} is not supported by corral`);
    }
  }
  for (const k of Object.keys(out) as (keyof typeof out)[]) if (out[k] === undefined) delete out[k];
  return out;
}

const secs = (iso: string) => Math.floor(Date.parse(iso) / 1000);

/** A row of GET /containers/json. */
export function summaryJson(
  r: ContainerRecord,
  status: string,
  ports: PortMapping[] = [],
  mounts: MountView[] = [],
): Json {
  return {
    Id: r.id,
    Names: [`/${r.name}`],
    Image: r.image,
    ImageID: r.imageId ?? '',
    Command: r.config.cmd.join(' '),
    Created: secs(r.created),
    Ports: ports.map((p) => ({
      IP: p.hostIP,
      PrivatePort: p.containerPort,
      PublicPort: p.hostPort,
      Type: p.protocol,
    })),
    Labels: r.config.labels ?? {},
    State: statusOf(r),
    Status: status,
    HostConfig: { NetworkMode: r.hostConfig.network?.mode ?? 'default' },
    NetworkSettings: { Networks: {} },
    Mounts: mounts,
  };
}

const ZERO_TIME = '0001-01-01T00:00:00Z';

/** GET /containers/{id}/json: Docker's shape for the fields corral has. */
export function inspectJson(
  r: ContainerRecord & { cgroupPath: string; networkSettings?: NetView; mounts?: MountView[] },
  logPath: string,
): Json {
  const fields = mountFieldsJson(r);
  const net = r.networkSettings;
  const ports: Record<string, { HostIp: string; HostPort: string }[]> = {};
  for (const p of net?.ports ?? []) {
    const key = `${p.containerPort}/${p.protocol}`;
    ports[key] = [...(ports[key] ?? []), { HostIp: p.hostIP, HostPort: String(p.hostPort) }];
  }
  const networks: Json = {};
  for (const [name, n] of Object.entries(net?.networks ?? {}))
    networks[name] = {
      IPAddress: n.ip ?? '',
      Gateway: n.gateway ?? '',
      MacAddress: n.mac ?? '',
      Aliases: n.aliases,
    };
  const first = Object.values(net?.networks ?? {})[0];
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
      Restarting: s.restarting === true,
      OOMKilled: s.oomKilled,
      Dead: false,
      Pid: s.pid,
      ExitCode: s.exitCode ?? 0,
      Error: s.error ?? '',
      StartedAt: s.startedAt ?? ZERO_TIME,
      FinishedAt: s.finishedAt ?? ZERO_TIME,
      ...healthJson(r),
    },
    Image: r.imageId ?? '',
    ResolvConfPath: '',
    HostnamePath: '',
    HostsPath: '',
    LogPath: logPath,
    Name: `/${r.name}`,
    RestartCount: s.restartCount ?? 0,
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
      NetworkMode: net?.mode ?? 'default',
      RestartPolicy: {
        Name: r.hostConfig.restartPolicy?.name ?? 'no',
        MaximumRetryCount: r.hostConfig.restartPolicy?.maximumRetryCount ?? 0,
      },
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
      ...hostRunJson(r),
      Binds: fields.Binds,
      Tmpfs: fields.Tmpfs,
      PortBindings: {},
    },
    GraphDriver: { Name: r.hostConfig.storageDriver, Data: null },
    Mounts: r.mounts ?? [],
    Config: {
      Hostname: r.config.hostname,
      Domainname: '',
      User: r.config.user,
      AttachStdin: false,
      AttachStdout: false,
      AttachStderr: false,
      Tty: r.config.tty,
      OpenStdin: r.config.openStdin === true,
      StdinOnce: r.config.stdinOnce === true,
      Env: r.config.env,
      Cmd: r.config.cmd,
      Image: r.image,
      Volumes: fields.Volumes,
      WorkingDir: r.config.workdir,
      Entrypoint: null,
      OnBuild: null,
      ...configRunJson(r),
      StopSignal: r.config.stopSignal,
      StopTimeout: r.config.stopTimeout,
    },
    NetworkSettings: {
      Networks: networks,
      Ports: ports,
      SandboxKey: '',
      IPAddress: first?.ip ?? '',
      Gateway: first?.gateway ?? '',
      MacAddress: first?.mac ?? '',
    },
    CorralCgroupPath: r.cgroupPath,
  };
}
