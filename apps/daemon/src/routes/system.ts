import { cpus, hostname, release, totalmem } from 'node:os';
import { parseTime } from '@corral/engine';
import {
  API_VERSION,
  bad,
  clientGone,
  filtersParam,
  jsonBody,
  jsonStream,
  MIN_API_VERSION,
  mustRes,
  sendJson,
} from '../http.js';
import type { Route } from '../server.js';

export const VERSION = '0.1.0';

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
    (call) =>
      sendJson(call, 200, {
        Platform: { Name: 'corral' },
        Components: [
          {
            Name: 'Engine',
            Version: VERSION,
            Details: {
              ApiVersion: API_VERSION,
              MinAPIVersion: MIN_API_VERSION,
              Os: 'linux',
              Arch: process.arch === 'x64' ? 'amd64' : process.arch,
              KernelVersion: release(),
              GoVersion: `node ${process.version}`,
              GitCommit: '',
              BuildTime: '',
              Experimental: 'false',
            },
          },
        ],
        Version: VERSION,
        ApiVersion: API_VERSION,
        MinAPIVersion: MIN_API_VERSION,
        GitCommit: '',
        GoVersion: `node ${process.version}`,
        Os: 'linux',
        Arch: process.arch === 'x64' ? 'amd64' : process.arch,
        KernelVersion: release(),
        BuildTime: '',
      }),
  ],
  [
    'GET',
    /^\/info$/,
    (call, d) => {
      const list = d.engine.list({ all: true });
      const count = (s: string) => list.filter((c) => c.state === s).length;
      const mem = process.memoryUsage();
      sendJson(call, 200, {
        ID: '',
        Containers: list.length,
        ContainersRunning: count('running'),
        ContainersPaused: 0,
        ContainersStopped: list.length - count('running'),
        Images: d.engine.images.list().length,
        Driver: 'overlay',
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
        CgroupDriver: 'cgroupfs',
        CgroupVersion: '',
        NEventsListener: 0,
        KernelVersion: release(),
        OperatingSystem: 'corral',
        OSType: 'linux',
        Architecture: process.arch === 'x64' ? 'x86_64' : process.arch,
        NCPU: cpus().length,
        MemTotal: totalmem(),
        IndexServerAddress: 'https://index.docker.io/v1/',
        RegistryConfig: { InsecureRegistryCIDRs: [], IndexConfigs: {}, Mirrors: [] },
        DockerRootDir: d.info.dataRoot,
        ExecRoot: d.info.execRoot,
        CgroupParent: d.info.cgroupParent ?? '',
        InsecureRegistries: d.info.insecureRegistries,
        HttpProxy: '',
        HttpsProxy: '',
        NoProxy: '',
        Name: hostname(),
        Labels: [],
        ExperimentalBuild: false,
        ServerVersion: VERSION,
        Runtimes: { 'corral-runtime': { path: 'corral-runtime' } },
        DefaultRuntime: 'corral-runtime',
        LiveRestoreEnabled: false,
        Isolation: '',
        SecurityOptions: ['name=seccomp,profile=builtin'],
        Warnings: [],
        // corral's own: what this idle daemon holds in memory.
        DaemonMemory: { RssBytes: mem.rss, HeapUsedBytes: mem.heapUsed },
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
      const images = d.engine.images.list();
      const containers = d.engine.list({ all: true });
      sendJson(call, 200, {
        LayersSize: images.reduce((n, i) => n + (i.size ?? 0), 0),
        Images: images.map((i) => ({
          Id: i.id,
          ParentId: '',
          RepoTags: i.repoTags,
          RepoDigests: [],
          Created: Math.floor(Date.parse(i.created ?? '') / 1000) || 0,
          Size: i.size ?? 0,
          SharedSize: -1,
          VirtualSize: i.size ?? 0,
          Labels: {},
          Containers: containers.filter((c) => d.engine.get(c.id).imageId === i.id).length,
        })),
        Containers: containers.map((c) => ({
          Id: c.id,
          Names: [`/${c.name}`],
          Image: c.image,
          Command: c.command,
          Created: Math.floor(Date.parse(c.created) / 1000),
          State: c.state,
          Status: c.status,
          SizeRw: 0,
          SizeRootFs: 0,
          Labels: {},
          Mounts: [],
        })),
        Volumes: [],
        BuildCache: [],
      });
    },
  ],
  [
    'POST',
    /^\/auth$/,
    async (call, d) => {
      const b = await jsonBody<{ username?: string; password?: string; serveraddress?: string }>(call);
      if (!b.username || !b.password) throw bad('username and password are required');
      await d.engine.images.login(b.serveraddress || 'docker.io', b.username, b.password);
      sendJson(call, 200, { Status: 'Login Succeeded', IdentityToken: '' });
    },
  ],
];
