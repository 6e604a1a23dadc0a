import { EngineError, psTop, treePids } from '@corral/engine';
import { bad, filtersParam, flag, intParam, jsonBody, sendEmpty, sendJson } from '../http.js';
import type { Route } from '../server.js';
import type { DaemonState } from '../state.js';
import { createOptions, inspectJson, summaryJson } from '../translate.js';

const ID = '([^/]+)';

/** GET /containers/json: the engine's filters (Docker's), sizes with size=1. */
function listFiltered(d: DaemonState, all: boolean, filters: Record<string, string[]>, size: boolean) {
  // As dockerd: without all, running ones only, unless a status or exited filter asks (the engine's rule).
  const rows = d.engine.list({ all, filters });
  const out = [];
  for (const c of rows) {
    try {
      const r = d.engine.get(c.id);
      const json = summaryJson(r, c.status, c.ports, c.mounts);
      if (size) {
        const s = d.engine.size(r.id);
        Object.assign(json, { SizeRw: s.rw, SizeRootFs: s.rootFs });
      }
      out.push(json);
    } catch {
      // removed meanwhile
    }
  }
  return out;
}

/** Fields of a commit body (a container config) that make the image's config. */
const IMAGE_FIELDS = [
  'Cmd',
  'Entrypoint',
  'Env',
  'Labels',
  'WorkingDir',
  'User',
  'ExposedPorts',
  'Volumes',
  'StopSignal',
];
/** Fields that are the container's, not the image's: taken and left out, as dockerd does. */
const CONTAINER_FIELDS = [
  'Image',
  'Hostname',
  'Domainname',
  'AttachStdin',
  'AttachStdout',
  'AttachStderr',
  'Tty',
  'OpenStdin',
  'StdinOnce',
];

/** POST /commit's body as config fields over the image's (empty values change nothing). */
function commitBody(body: Record<string, unknown>): Record<string, unknown> {
  const config: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(body)) {
    const empty =
      v === null || v === '' || v === false || (typeof v === 'object' && !Object.keys(v as object).length);
    if (empty || CONTAINER_FIELDS.includes(k)) continue;
    if (!IMAGE_FIELDS.includes(k)) throw bad(`commit with config field ${k} is not supported by corral`);
    config[k] = v;
  }
  return config;
}

export const containerRoutes: Route[] = [
  [
    'GET',
    /^\/containers\/json$/,
    (call, d) => {
      const limit = intParam(call.query, 'limit');
      // A limit (docker ps -n, -l) counts stopped containers too, as -a does.
      const all = flag(call.query, 'all') || (limit !== undefined && limit > 0);
      let rows = listFiltered(d, all, filtersParam(call.query), flag(call.query, 'size'));
      if (limit !== undefined && limit > 0) rows = rows.slice(0, limit);
      sendJson(call, 200, rows);
    },
  ],
  [
    'POST',
    /^\/containers\/create$/,
    async (call, d) => {
      const body = await jsonBody(call);
      d.log.debug(`create: ${JSON.stringify(body)}`);
      const platform = call.query.get('platform');
      if (platform && platform !== 'linux' && !platform.startsWith(`linux/`))
        throw bad(`platform ${platform} is not supported`);
      // SecurityOpt goes to the engine as the API sends it: a seccomp profile is inline JSON
      // (the docker CLI reads the file), never a path on this machine.
      const options = createOptions(body, call.query.get('name') ?? undefined);
      if (d.info.cgroupParent && !options.resources?.cgroupParent)
        options.resources = { ...options.resources, cgroupParent: d.info.cgroupParent };
      const r = await d.engine.create(options);
      sendJson(call, 201, { Id: r.id, Warnings: [] });
    },
  ],
  [
    'GET',
    new RegExp(`^/containers/${ID}/json$`),
    (call, d) => {
      const r = d.engine.inspect(call.params[0]);
      const json = inspectJson(r, `${d.info.dataRoot}/containers/${r.id}/${r.id}-json.log`);
      const execs = [...d.execs.values()].filter((e) => e.containerId === r.id).map((e) => e.id);
      json.ExecIDs = execs.length ? execs : null;
      sendJson(call, 200, json);
    },
  ],
  [
    'POST',
    new RegExp(`^/containers/${ID}/start$`),
    async (call, d) => {
      const r = d.engine.get(call.params[0]);
      if (r.state.status === 'running') return sendEmpty(call, 304);
      // An --rm container that ends at once and is removed during the start still started:
      // the engine's start answers so (lifecycle.ts startedRecord).
      await d.start(r.id);
      sendEmpty(call);
    },
  ],
  [
    'POST',
    new RegExp(`^/containers/${ID}/stop$`),
    async (call, d) => {
      const r = d.engine.get(call.params[0]);
      const running = r.state.status === 'running' || r.state.restarting === true;
      // A stop ends a restart policy's restarts too, also between two runs.
      if (!running && !r.hostConfig.restartPolicy) return sendEmpty(call, 304);
      await d.engine.stop(r.id, intParam(call.query, 't') ?? intParam(call.query, 'timeout'));
      sendEmpty(call, running ? undefined : 304);
    },
  ],
  [
    'POST',
    new RegExp(`^/containers/${ID}/restart$`),
    async (call, d) => {
      const r = d.engine.get(call.params[0]);
      if (r.state.status === 'running') await d.engine.stop(r.id, intParam(call.query, 't'));
      await d.start(r.id);
      sendEmpty(call);
    },
  ],
  [
    'POST',
    new RegExp(`^/containers/${ID}/kill$`),
    async (call, d) => {
      const r = d.engine.get(call.params[0]);
      if (r.state.status !== 'running') throw new EngineError('Conflict', `Container ${r.id} is not running`);
      await d.engine.kill(r.id, call.query.get('signal') || 'SIGKILL');
      sendEmpty(call);
    },
  ],
  [
    'POST',
    new RegExp(`^/containers/${ID}/pause$`),
    async (call, d) => {
      await d.engine.pause(call.params[0]);
      sendEmpty(call);
    },
  ],
  [
    'POST',
    new RegExp(`^/containers/${ID}/unpause$`),
    async (call, d) => {
      await d.engine.unpause(call.params[0]);
      sendEmpty(call);
    },
  ],
  [
    'POST',
    new RegExp(`^/containers/${ID}/rename$`),
    (call, d) => {
      const name = call.query.get('name');
      if (!name) throw bad('name is required');
      d.engine.rename(call.params[0], name.replace(/^\//, ''));
      sendEmpty(call);
    },
  ],
  [
    'DELETE',
    new RegExp(`^/containers/${ID}$`),
    async (call, d) => {
      if (flag(call.query, 'link')) throw bad('links are not supported by corral');
      const r = await d.engine.remove(call.params[0], {
        force: flag(call.query, 'force'),
        volumes: flag(call.query, 'v'),
      });
      for (const [id, e] of d.execs) if (e.containerId === r.id) d.execs.delete(id);
      sendEmpty(call);
    },
  ],
  [
    'GET',
    new RegExp(`^/containers/${ID}/top$`),
    async (call, d) => {
      // The host's ps with the client's arguments, the container's rows (dockerd's way).
      const table = await psTop(treePids(d.engine.top(call.params[0])), call.query.get('ps_args') ?? '');
      sendJson(call, 200, table);
    },
  ],
  [
    'GET',
    new RegExp(`^/containers/${ID}/changes$`),
    (call, d) => {
      const kinds: Record<string, number> = { modified: 0, added: 1, deleted: 2, M: 0, A: 1, D: 2 };
      sendJson(
        call,
        200,
        d.engine.diff(call.params[0]).map((c) => ({ Path: c.path, Kind: kinds[c.kind] ?? 0 })),
      );
    },
  ],
  [
    'POST',
    /^\/containers\/prune$/,
    async (call, d) => {
      const r = await d.engine.pruneContainers(filtersParam(call.query));
      sendJson(call, 200, { ContainersDeleted: r.deleted, SpaceReclaimed: r.spaceReclaimed });
    },
  ],
  [
    'POST',
    /^\/commit$/,
    async (call, d) => {
      const container = call.query.get('container');
      if (!container) throw bad('container is required');
      const config = commitBody(await jsonBody(call));
      const repo = call.query.get('repo');
      const tag = call.query.get('tag');
      const img = await d.engine.commitContainer(container, {
        name: repo ? `${repo}:${tag || 'latest'}` : undefined,
        author: call.query.get('author') ?? undefined,
        message: call.query.get('comment') ?? undefined,
        pause: flag(call.query, 'pause', true),
        changes: call.query.getAll('changes'),
        config,
      });
      sendJson(call, 201, { Id: img.id });
    },
  ],
];
