import { readFileSync } from 'node:fs';
import { Engine, EngineError, parseTime } from '@corral/engine';
import {
  API_VERSION,
  bad,
  clientGone,
  filtersParam,
  jsonBody,
  jsonStream,
  mustRes,
  sendJson,
} from '../http.js';
import type { Route } from '../server.js';

/** This process's proportional set size (its private memory plus its share of the shared). */
function ownPss(): number {
  try {
    const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync('/proc/self/smaps_rollup', 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** corrald's version: the engine's (`corrald --version`). */
export const VERSION = Engine.version().version;

function ping(call: Parameters<Route[2]>[0]): void {
  const res = mustRes(call);
  res.writeHead(200, {
    'Content-Type': 'text/plain; charset=utf-8',
    'Api-Version': API_VERSION,
    'Builder-Version': '1',
    'Docker-Experimental': 'false',
    Ostype: 'linux',
    'Cache-Control': 'no-cache, no-store, must-revalidate',
    Pragma: 'no-cache',
    'Content-Length': call.method === 'HEAD' ? 0 : 2,
  });
  res.end(call.method === 'HEAD' ? undefined : 'OK');
}

function eventTime(v: string | null): number | undefined {
  return v ? parseTime(v) : undefined;
}

export const systemRoutes: Route[] = [
  ['GET', /^\/_ping$/, ping],
  ['HEAD', /^\/_ping$/, ping],
  [
    'GET',
    /^\/version$/,
    (call, d) => {
      const v = d.engine.version();
      sendJson(call, 200, {
        Platform: { Name: 'corral' },
        Components: [
          {
            Name: 'Engine',
            Version: v.version,
            Details: {
              ApiVersion: v.apiVersion,
              MinAPIVersion: v.minApiVersion,
              Os: v.os,
              Arch: v.arch,
              KernelVersion: v.kernelVersion,
              GoVersion: `node ${v.node}`,
              GitCommit: '',
              BuildTime: '',
              Experimental: 'false',
              CgroupVersion: v.cgroupVersion,
              StorageDriver: v.storageDriver,
            },
          },
          { Name: v.runtime, Version: v.version, Details: { GitCommit: '' } },
        ],
        Version: v.version,
        ApiVersion: v.apiVersion,
        MinAPIVersion: v.minApiVersion,
        GitCommit: '',
        GoVersion: `node ${v.node}`,
        Os: v.os,
        Arch: v.arch,
        KernelVersion: v.kernelVersion,
        BuildTime: '',
      });
    },
  ],
  [
    'GET',
    /^\/info$/,
    (call, d) => {
      const i = d.engine.info();
      const mem = process.memoryUsage();
      sendJson(call, 200, {
        ID: '',
        Containers: i.containers,
        ContainersRunning: i.containersRunning,
        ContainersPaused: i.containersPaused,
        ContainersStopped: i.containersStopped,
        Images: i.images,
        Driver: i.storageDriver,
        DriverStatus: [],
        Plugins: { Volume: [], Network: [], Authorization: null, Log: ['json-file'] },
        MemoryLimit: true,
        SwapLimit: true,
        CpuCfsPeriod: true,
        CpuCfsQuota: true,
        CPUShares: true,
        CPUSet: true,
        PidsLimit: true,
        IPv4Forwarding: false,
        Debug: false,
        NFd: 0,
        NGoroutines: 0,
        SystemTime: new Date().toISOString(),
        LoggingDriver: 'json-file',
        CgroupDriver: i.cgroupDriver,
        CgroupVersion: i.cgroupVersion,
        NEventsListener: 0,
        KernelVersion: i.kernelVersion,
        OperatingSystem: 'corral',
        OSType: 'linux',
        Architecture: i.architecture,
        NCPU: i.ncpu,
        MemTotal: i.memTotal,
        IndexServerAddress: 'https://index.docker.io/v1/',
        RegistryConfig: { InsecureRegistryCIDRs: [], IndexConfigs: {}, Mirrors: [] },
        DockerRootDir: d.info.dataRoot,
        ExecRoot: d.info.execRoot,
        CgroupParent: d.info.cgroupParent ?? '',
        InsecureRegistries: d.info.insecureRegistries,
        HttpProxy: '',
        HttpsProxy: '',
        NoProxy: '',
        Name: i.name,
        Labels: [],
        ExperimentalBuild: false,
        ServerVersion: i.version,
        Runtimes: Object.fromEntries(i.runtimes.map((r) => [r, { path: r }])),
        DefaultRuntime: i.defaultRuntime,
        LiveRestoreEnabled: false,
        Isolation: '',
        SecurityOptions: ['name=seccomp,profile=builtin'],
        Warnings: i.warnings.map((w) => `WARNING: ${w}`),
        // corral's own: what this idle daemon holds in memory, and its pool of keepers started
        // ahead (--pool-size) with what those hold.
        DaemonMemory: { RssBytes: mem.rss, HeapUsedBytes: mem.heapUsed, PssBytes: ownPss() },
        KeeperPool: d.engine.pool() ?? {
          size: 0,
          ready: 0,
          starting: 0,
          hits: 0,
          misses: 0,
          unready: 0,
          pssBytes: 0,
        },
      });
    },
  ],
  [
    'GET',
    /^\/events$/,
    async (call, d) => {
      const filters = filtersParam(call.query);
      for (const k of Object.keys(filters))
        if (!['container', 'image', 'event', 'type'].includes(k)) throw bad(`invalid filter '${k}'`);
      const since = eventTime(call.query.get('since'));
      const until = eventTime(call.query.get('until'));
      const signal = clientGone(call);
      const out = jsonStream(call);
      for await (const e of d.engine.events({ since, until, filters, signal })) out.write(e);
      out.end();
    },
  ],
  [
    'GET',
    /^\/system\/df$/,
    async (call, d) => {
      const u = d.engine.diskUsage();
      sendJson(call, 200, {
        LayersSize: u.images.reduce((n, i) => n + i.size, 0),
        Images: u.images.map((i) => ({
          Id: i.id,
          ParentId: '',
          RepoTags: i.repoTags,
          RepoDigests: [],
          Created: Math.floor(Date.parse(i.created ?? '') / 1000) || 0,
          Size: i.size,
          SharedSize: -1,
          VirtualSize: i.size,
          Labels: {},
          Containers: i.containers,
        })),
        Containers: u.containers.map((c) => ({
          Id: c.id,
          Names: [`/${c.name}`],
          Image: c.image,
          Command: c.command,
          Created: Math.floor(Date.parse(c.created) / 1000),
          State: c.state,
          Status: c.status,
          SizeRw: c.sizeRw,
          SizeRootFs: c.sizeRootFs,
          Labels: {},
          Mounts: [],
        })),
        Volumes: u.volumes.map((v) => ({
          Name: v.name,
          Driver: 'local',
          Mountpoint: v.mountpoint,
          Labels: v.labels,
          Scope: 'local',
          Options: {},
          UsageData: { Size: v.size, RefCount: v.refCount },
        })),
        BuildCache: [],
      });
    },
  ],
  [
    'POST',
    /^\/auth$/,
    async (call, d) => {
      const b = await jsonBody<{
        username?: string;
        password?: string;
        serveraddress?: string;
        identitytoken?: string;
      }>(call);
      const identityToken = typeof b.identitytoken === 'string' ? b.identitytoken : '';
      if (!identityToken && (!b.username || !b.password)) throw bad('username and password are required');
      // Checked, not kept: as with dockerd, the client keeps them and sends them with each
      // pull and push (X-Registry-Auth).
      const host = (b.serveraddress || 'docker.io').replace(/^https?:\/\//, '').replace(/\/.*$/, '');
      const server = /(^|\.)docker\.io$/.test(host) ? 'docker.io' : host;
      let answer: { identityToken?: string };
      try {
        answer = await d.engine.images.login(server, b.username || '<token>', b.password ?? '', {
          store: false,
          ...(identityToken ? { identityToken } : {}),
        });
      } catch (e) {
        // dockerd's status for refused credentials, with the registry's words.
        if (e instanceof EngineError && e.kind === 'Forbidden')
          return sendJson(call, 401, { message: e.message });
        throw e;
      }
      // A token service that hands out refresh tokens: the client keeps that in place of the
      // password and sends it back as `identitytoken` (dockerd's /auth answer).
      sendJson(call, 200, { Status: 'Login Succeeded', IdentityToken: answer.identityToken ?? '' });
    },
  ],
];
