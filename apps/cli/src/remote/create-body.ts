// The engine's create options (what run and create parse from their flags) as Docker's create
// body: the reverse of corrald's translate.ts. What the daemon cannot be told (a root folder of
// this machine, a storage driver per container) is refused by name, never dropped.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { type CreateContainerOptions, EngineError, type MountRequest } from '@corral/engine';
import { RemoteUnsupported } from '../backend.js';

type Json = Record<string, unknown>;

/** A host path as the daemon must get it: absolute (its folder is not ours). */
const absolute = (p: string) => (p.startsWith('/') ? p : resolve(p));

/** `-v SRC:DST[:MODE]` with a relative host source made absolute (a name stays a volume's). */
function bind(v: string): string {
  const [src, ...rest] = v.split(':');
  if (!rest.length || !(src.startsWith('.') || src.startsWith('~'))) return v;
  return [absolute(src), ...rest].join(':');
}

/** `-p` strings as Docker's PortBindings (corrald makes the same strings of them again). */
function portBindings(publish: readonly string[]): Record<string, { HostIp: string; HostPort: string }[]> {
  const out: Record<string, { HostIp: string; HostPort: string }[]> = {};
  for (const spec of publish) {
    const slash = spec.lastIndexOf('/');
    const proto = slash >= 0 ? spec.slice(slash + 1) : 'tcp';
    const parts = (slash >= 0 ? spec.slice(0, slash) : spec).split(':');
    if (parts.length > 3)
      throw new EngineError('InvalidArgument', `invalid -p ${spec}: expected [IP:]HOST:CTR[/tcp|udp]`);
    const ctr = parts[parts.length - 1];
    const [HostIp, HostPort] =
      parts.length === 3 ? [parts[0], parts[1]] : ['', parts.length === 2 ? parts[0] : ''];
    const key = `${ctr}/${proto}`;
    out[key] = [...(out[key] ?? []), { HostIp, HostPort }];
  }
  return out;
}

function mountJson(m: MountRequest): Json {
  return {
    Type: m.type,
    Source: m.type === 'bind' && m.source ? absolute(m.source) : (m.source ?? ''),
    Target: m.target,
    ReadOnly: m.readonly === true,
    ...(m.propagation || m.nonRecursive
      ? { BindOptions: { Propagation: m.propagation ?? '', NonRecursive: m.nonRecursive === true } }
      : {}),
    ...(m.noCopy || m.labels || m.driver || m.driverOptions
      ? {
          VolumeOptions: {
            NoCopy: m.noCopy === true,
            Labels: m.labels ?? {},
            ...(m.driver || m.driverOptions
              ? { DriverConfig: { Name: m.driver ?? '', Options: m.driverOptions ?? {} } }
              : {}),
          },
        }
      : {}),
    ...(m.tmpfsSize || m.tmpfsMode
      ? { TmpfsOptions: { SizeBytes: m.tmpfsSize ?? 0, Mode: m.tmpfsMode ?? 0 } }
      : {}),
  };
}

/** `--tmpfs PATH[:OPTS]` as HostConfig.Tmpfs. */
function tmpfsMap(t: CreateContainerOptions['tmpfs']): Record<string, string> {
  if (!t) return {};
  if (!Array.isArray(t)) return t;
  return Object.fromEntries(
    t.map((s) => {
      const i = s.indexOf(':');
      return i < 0 ? [s, ''] : [s.slice(0, i), s.slice(i + 1)];
    }),
  );
}

/** The seccomp choice and no-new-privileges as SecurityOpt (a profile file is sent as its content). */
function securityOpt(o: CreateContainerOptions): string[] {
  const out = [...(o.securityOpt ?? [])];
  const s = o.seccomp;
  if (s === 'unconfined') out.push('seccomp=unconfined');
  else if (s && typeof s === 'object') {
    const x = s as { file?: string; profile?: unknown };
    const text =
      x.file !== undefined
        ? readFileSync(x.file, 'utf8')
        : typeof x.profile === 'string'
          ? x.profile
          : JSON.stringify(x.profile);
    out.push(`seccomp=${text}`);
  }
  if (o.noNewPrivileges) out.push('no-new-privileges');
  return out;
}

/** `--restart NAME[:N]` as Docker's RestartPolicy. */
function restartPolicy(r: CreateContainerOptions['restart']): Json | undefined {
  if (r === undefined) return undefined;
  if (typeof r !== 'string') return { Name: r.name ?? 'no', MaximumRetryCount: r.maximumRetryCount ?? 0 };
  const [name, count] = r.split(':');
  if (count !== undefined && !/^\d+$/.test(count))
    throw new EngineError('InvalidArgument', `invalid restart policy ${r}: the count must be a whole number`);
  return { Name: name, MaximumRetryCount: count === undefined ? 0 : Number(count) };
}

const given = <T>(v: T | undefined): v is T => v !== undefined;

/** Docker's POST /containers/create body for the engine's options. */
export function createBody(o: CreateContainerOptions): Json {
  if (o.rootfs)
    throw new RemoteUnsupported(
      '--rootfs',
      'corrald makes containers from images, not from a folder of this machine',
    );
  if (o.storageDriver) throw new RemoteUnsupported('--storage-driver', "corrald's storage driver applies");
  const res = o.resources ?? {};
  const network = o.network;
  const endpoint: Json = {
    ...(o.networkAliases?.length ? { Aliases: o.networkAliases } : {}),
    ...(o.macAddress ? { MacAddress: o.macAddress } : {}),
    ...(o.ip ? { IPAMConfig: { IPv4Address: o.ip } } : {}),
  };
  const host: Json = {
    AutoRemove: o.autoRemove === true,
    Privileged: o.privileged === true,
    ReadonlyRootfs: o.readonlyRootfs === true,
    Init: o.init === true,
    CapAdd: o.capAdd ?? [],
    CapDrop: o.capDrop ?? [],
    SecurityOpt: securityOpt(o),
    RestartPolicy: restartPolicy(o.restart),
    Memory: res.memory,
    MemorySwap: res.memorySwap,
    MemoryReservation: res.memoryReservation,
    NanoCpus: res.nanoCpus,
    CpuShares: res.cpuShares,
    CpuPeriod: res.cpuPeriod,
    CpuQuota: res.cpuQuota,
    CpusetCpus: res.cpusetCpus,
    CpusetMems: res.cpusetMems,
    PidsLimit: res.pidsLimit,
    BlkioWeight: res.blkioWeight,
    CgroupParent: res.cgroupParent,
    NetworkMode: network,
    PortBindings: portBindings(o.publish ?? []),
    PublishAllPorts: o.publishAll === true,
    Dns: o.dns,
    DnsSearch: o.dnsSearch,
    DnsOptions: o.dnsOptions,
    ExtraHosts: o.addHost,
    Binds: (o.volumes ?? []).map(bind),
    Mounts: (o.mounts ?? []).map(mountJson),
    Tmpfs: tmpfsMap(o.tmpfs),
    VolumesFrom: o.volumesFrom,
    Ulimits: o.ulimits?.map((u) => ({ Name: u.name, Soft: u.soft, Hard: u.hard })),
    Devices: o.devices?.map((d) => ({
      PathOnHost: d.pathOnHost,
      PathInContainer: d.pathInContainer,
      CgroupPermissions: d.cgroupPermissions,
    })),
    GroupAdd: o.groupAdd,
    ShmSize: o.shmSize,
    Sysctls: o.sysctls,
    OomKillDisable: o.oomKillDisable === true,
    OomScoreAdj: o.oomScoreAdj,
    ...(o.logConfig ? { LogConfig: { Type: o.logConfig.type ?? '', Config: o.logConfig.config ?? {} } } : {}),
  };
  for (const k of Object.keys(host)) if (!given(host[k])) delete host[k];
  const body: Json = {
    Image: o.image,
    Cmd: o.cmd,
    ...(o.entrypoint !== undefined ? { Entrypoint: [o.entrypoint] } : {}),
    Env: o.env ?? [],
    WorkingDir: o.workdir,
    Hostname: o.hostname,
    User: o.user,
    Tty: o.tty === true,
    OpenStdin: o.openStdin === true,
    StdinOnce: o.stdinOnce === true,
    StopSignal: o.stopSignal,
    StopTimeout: o.stopTimeout,
    Labels: o.labels ?? {},
    Healthcheck: o.healthcheck,
    Volumes: Object.fromEntries((o.anonymousVolumes ?? []).map((p) => [p, {}])),
    HostConfig: host,
    ...(Object.keys(endpoint).length
      ? { NetworkingConfig: { EndpointsConfig: { [network || 'default']: endpoint } } }
      : {}),
  };
  for (const k of Object.keys(body)) if (!given(body[k])) delete body[k];
  return body;
}
