// Docker's create fields for the engine's run settings (run-options.ts and health.ts of the
// engine), both ways: HostConfig.Ulimits, Devices, GroupAdd, ShmSize, Sysctls, OomKillDisable,
// OomScoreAdj, LogConfig and Config.Labels, Healthcheck into create options; the record back
// into inspect's shape. The engine checks the values; here only their JSON types.
import type { ContainerRecord, CreateContainerOptions, DeviceMapping, HealthConfig } from '@corral/engine';
import { bad } from './http.js';

type Json = Record<string, unknown>;

const list = (v: unknown, field: string): unknown[] => {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw bad(`${field} must be a list`);
  return v;
};

const stringMap = (v: unknown, field: string): Record<string, string> => {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw bad(`${field} must be an object`);
  for (const [k, x] of Object.entries(v as Json))
    if (typeof x !== 'string') throw bad(`${field}.${k} must be a string`);
  return v as Record<string, string>;
};

const int = (v: unknown, field: string): number | undefined => {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw bad(`${field} must be a whole number`);
  return v;
};

function healthOf(v: unknown): HealthConfig | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object' || Array.isArray(v)) throw bad('Healthcheck must be an object');
  const h = v as Json;
  const test = list(h.Test, 'Healthcheck.Test');
  if (test.some((t) => typeof t !== 'string')) throw bad('Healthcheck.Test must be a list of strings');
  return {
    Test: test as string[],
    Interval: int(h.Interval, 'Healthcheck.Interval'),
    Timeout: int(h.Timeout, 'Healthcheck.Timeout'),
    StartPeriod: int(h.StartPeriod, 'Healthcheck.StartPeriod'),
    Retries: int(h.Retries, 'Healthcheck.Retries'),
  };
}

/** The run settings of a create body. The image is never pulled here: the client pulls (Docker's split). */
export function runSettingsOf(host: Json, body: Json): Partial<CreateContainerOptions> {
  const ulimits = list(host.Ulimits, 'HostConfig.Ulimits').map((u, i) => {
    const x = (u ?? {}) as Json;
    if (typeof x.Name !== 'string') throw bad(`HostConfig.Ulimits[${i}].Name must be a string`);
    return {
      name: x.Name,
      soft: int(x.Soft, `HostConfig.Ulimits[${i}].Soft`) ?? 0,
      hard: int(x.Hard, `HostConfig.Ulimits[${i}].Hard`) ?? 0,
    };
  });
  const devices: DeviceMapping[] = list(host.Devices, 'HostConfig.Devices').map((d, i) => {
    const x = (d ?? {}) as Json;
    if (typeof x.PathOnHost !== 'string' || !x.PathOnHost)
      throw bad(`HostConfig.Devices[${i}].PathOnHost must be a path`);
    return {
      pathOnHost: x.PathOnHost,
      pathInContainer: typeof x.PathInContainer === 'string' ? x.PathInContainer : '',
      cgroupPermissions: typeof x.CgroupPermissions === 'string' ? x.CgroupPermissions : '',
    };
  });
  const groupAdd = list(host.GroupAdd, 'HostConfig.GroupAdd');
  if (groupAdd.some((g) => typeof g !== 'string')) throw bad('HostConfig.GroupAdd must be a list of strings');
  const log = (host.LogConfig ?? {}) as Json;
  const oomKillDisable = host.OomKillDisable;
  if (oomKillDisable !== undefined && oomKillDisable !== null && typeof oomKillDisable !== 'boolean')
    throw bad('HostConfig.OomKillDisable must be true or false');
  return {
    pull: 'never',
    labels: stringMap(body.Labels, 'Labels'),
    ulimits,
    devices,
    groupAdd: groupAdd as string[],
    shmSize: int(host.ShmSize, 'HostConfig.ShmSize'),
    sysctls: stringMap(host.Sysctls, 'HostConfig.Sysctls'),
    oomKillDisable: oomKillDisable === true,
    oomScoreAdj: int(host.OomScoreAdj, 'HostConfig.OomScoreAdj'),
    ...(log.Type || log.Config
      ? {
          logConfig: {
            type: typeof log.Type === 'string' && log.Type ? log.Type : undefined,
            config: stringMap(log.Config, 'HostConfig.LogConfig.Config'),
          },
        }
      : {}),
    healthcheck: healthOf(body.Healthcheck),
  };
}

/** The HostConfig fields of inspect for the run settings. */
export function hostRunJson(r: ContainerRecord): Json {
  const h = r.hostConfig;
  return {
    Ulimits: h.ulimits?.map((u) => ({ Name: u.name, Soft: u.soft, Hard: u.hard })) ?? null,
    Devices:
      h.devices?.map((d) => ({
        PathOnHost: d.pathOnHost,
        PathInContainer: d.pathInContainer,
        CgroupPermissions: d.cgroupPermissions,
      })) ?? [],
    GroupAdd: h.groupAdd ?? null,
    ShmSize: h.shmSize ?? 64 * 1024 * 1024,
    Sysctls: h.sysctls ?? {},
    OomKillDisable: h.resources.oomKillDisable === true,
    OomScoreAdj: h.oomScoreAdj ?? 0,
    LogConfig: { Type: 'json-file', Config: h.logConfig?.config ?? {} },
  };
}

/** Config.Labels and Config.Healthcheck of inspect. */
export function configRunJson(r: ContainerRecord): Json {
  return {
    Labels: r.config.labels ?? {},
    ...(r.config.healthcheck ? { Healthcheck: r.config.healthcheck } : {}),
  };
}

/** State.Health of inspect, while the container has a health check. */
export function healthJson(r: ContainerRecord): Json {
  return r.state.health && r.config.healthcheck ? { Health: r.state.health } : {};
}
