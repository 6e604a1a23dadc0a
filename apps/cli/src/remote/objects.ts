// Images, volumes and networks through corrald: the engine's sub-objects (engine.images,
// .volumes, .networks) as Docker Engine API requests (a container's files: files.ts).
import { createReadStream } from 'node:fs';
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  EngineError,
  keepLogin,
  type ProgressEvent,
  registryAuthHeader,
  type VolumeView,
} from '@corral/engine';
import { type Backend, RemoteUnsupported } from '../backend.js';
import type { Client } from './http.js';
import { splitName } from './shapes.js';

// biome-ignore lint/suspicious/noExplicitAny: JSON of the API, read field by field
type Json = Record<string, any>;

const enc = encodeURIComponent;
const iso = (secs: number | undefined) => (secs ? new Date(secs * 1000).toISOString() : undefined);

/** corrald's progress words (routes/images.ts) back to the engine's statuses. */
const STATUSES: Record<string, ProgressEvent['status']> = {
  Waiting: 'waiting',
  'Already exists': 'exists',
  'Layer already exists': 'exists',
  Downloading: 'downloading',
  Pushing: 'uploading',
  'Pull complete': 'done',
  Pushed: 'done',
  'Mounted from': 'mounted',
  Retrying: 'retrying',
  Failed: 'failed',
} as Record<string, ProgressEvent['status']>;

/** A streamed JSON answer's lines: progress to `onProgress`, an error line thrown. */
async function progressStream(
  lines: AsyncIterable<Json>,
  onProgress: ((e: ProgressEvent) => void) | undefined,
  each: (line: Json) => void,
): Promise<void> {
  for await (const l of lines) {
    if (l.error || l.errorDetail) throw new EngineError('Unavailable', l.errorDetail?.message ?? l.error);
    const status = STATUSES[l.status];
    if (status && l.id && onProgress) {
      const d = l.progressDetail ?? {};
      onProgress({
        id: l.id,
        digest: '',
        kind: 'layer',
        status,
        current: d.current ?? 0,
        total: d.total ?? 0,
      });
    }
    each(l);
  }
}

/** The credentials this client keeps for `ref`'s registry, sent with a pull or push (Docker's way). */
async function authHeaders(ref: string): Promise<Record<string, string>> {
  const auth = await registryAuthHeader(ref);
  return auth ? { 'X-Registry-Auth': auth } : {};
}

export function remoteImages(c: Client): Backend['images'] {
  return {
    async list() {
      const rows = await c.json<Json[]>('GET', '/images/json');
      return rows.map((r) => ({
        id: r.Id,
        manifestDigest: '',
        repoTags: r.RepoTags ?? [],
        created: iso(r.Created),
        size: r.Size ?? 0,
      }));
    },
    inspect: (ref) => c.json('GET', `/images/${enc(ref)}/json`),
    async history(ref) {
      const rows = await c.json<Json[]>('GET', `/images/${enc(ref)}/history`);
      return rows.map((h) => ({
        id: h.Id,
        created: iso(h.Created),
        createdBy: h.CreatedBy ?? '',
        size: h.Size,
        comment: h.Comment,
      }));
    },
    async tag(source, target) {
      const { repo, tag } = splitName(target);
      await c.json('POST', `/images/${enc(source)}/tag`, { query: { repo, tag } });
    },
    async remove(ref, o = {}) {
      const rows = await c.json<Json[]>('DELETE', `/images/${enc(ref)}`, { query: { force: o.force } });
      return {
        untagged: rows.filter((r) => r.Untagged).map((r) => r.Untagged),
        deleted: rows.filter((r) => r.Deleted).map((r) => r.Deleted),
      };
    },
    async prune(o = {}) {
      const filters = { ...(o.all ? { dangling: ['false'] } : {}), ...(o.until ? { until: [o.until] } : {}) };
      const r = await c.json<Json>('POST', '/images/prune', {
        query: { filters: Object.keys(filters).length ? JSON.stringify(filters) : undefined },
      });
      return {
        deletedImages: (r.ImagesDeleted ?? []).map((x: Json) => x.Deleted ?? x.Untagged),
        reclaimedBytes: r.SpaceReclaimed ?? 0,
      };
    },
    async load(input) {
      const body: Readable = typeof input === 'string' ? createReadStream(input) : input;
      const images: { id: string; names: string[] }[] = [];
      await progressStream(c.jsonLines('POST', '/images/load', { body }), undefined, (l) => {
        const m = /^Loaded image( ID)?: (.*)\n?$/.exec(l.stream ?? '');
        if (m) images.push(m[1] ? { id: m[2], names: [] } : { id: '', names: [m[2]] });
      });
      return { images };
    },
    async save(refs: string[], out: Writable) {
      await pipeline(await c.request('GET', '/images/get', { query: { names: refs } }), out);
    },
    async import(input, o = {}) {
      // docker import's request: the tarball as the body, the changes parsed by corrald's engine.
      const body: Readable = typeof input === 'string' ? createReadStream(input) : input;
      const query = { fromSrc: '-', repo: o.names?.[0], changes: o.changes, message: o.message };
      let id = '';
      await progressStream(c.jsonLines('POST', '/images/create', { query, body }), undefined, (l) => {
        if (typeof l.status === 'string' && l.status.startsWith('sha256:')) id = l.status;
      });
      return { id };
    },
    async pull(ref, o = {}) {
      let digest = '';
      await progressStream(
        c.jsonLines('POST', '/images/create', {
          query: { fromImage: ref, platform: o.platform },
          headers: await authHeaders(ref),
        }),
        o.onProgress,
        (l) => {
          const m = /^Digest: (.*)$/.exec(l.status ?? '');
          if (m) digest = m[1];
        },
      );
      return { digest };
    },
    async push(ref, o = {}) {
      let digest = '';
      const lines = c.jsonLines('POST', `/images/${enc(ref)}/push`, { headers: await authHeaders(ref) });
      await progressStream(lines, o.onProgress, (l) => {
        if (l.aux?.Digest) digest = l.aux.Digest;
      });
      return { digest };
    },
    async login(server, username, password) {
      // corrald checks them and keeps nothing; this client keeps them, as the docker CLI does.
      await c.json('POST', '/auth', { body: { username, password, serveraddress: server } });
      await keepLogin(server, username, password);
    },
  };
}

export function remoteVolumes(c: Client): Backend['volumes'] {
  const filters = (f: Record<string, string[]> | undefined) =>
    f && Object.keys(f).length ? JSON.stringify(f) : undefined;
  return {
    create: (o) =>
      c.json<VolumeView>('POST', '/volumes/create', {
        body: { Name: o.name, Driver: o.driver, DriverOpts: o.options, Labels: o.labels },
      }),
    list: async (f) =>
      (await c.json<{ Volumes: VolumeView[] }>('GET', '/volumes', { query: { filters: filters(f) } }))
        .Volumes,
    inspect: (name) => c.json<VolumeView>('GET', `/volumes/${enc(name)}`),
    remove: (name, o = {}) => c.json('DELETE', `/volumes/${enc(name)}`, { query: { force: o.force } }),
    async prune(o = {}) {
      // Named volumes too: API 1.41's prune, as corrald keeps Docker's change at 1.42.
      const r = await c.json<Json>('POST', `${o.all ? '/v1.41' : ''}/volumes/prune`, {
        query: { filters: filters(o.filters) },
      });
      return { removed: r.VolumesDeleted ?? [], spaceReclaimed: r.SpaceReclaimed ?? 0 };
    },
  };
}

export function remoteNetworks(c: Client): Backend['networks'] {
  return {
    async create(o) {
      const r = await c.json<Json>('POST', '/networks/create', {
        body: {
          Name: o.name,
          Driver: 'bridge',
          Internal: o.internal === true,
          Labels: o.labels ?? {},
          ...(o.subnet || o.gateway ? { IPAM: { Config: [{ Subnet: o.subnet, Gateway: o.gateway }] } } : {}),
        },
      });
      return { id: r.Id };
    },
    async list() {
      const rows = await c.json<Json[]>('GET', '/networks');
      return rows.map((n) => ({
        id: n.Id,
        name: n.Name,
        driver: n.Driver,
        subnet: n.IPAM?.Config?.[0]?.Subnet ?? '',
        internal: n.Internal === true,
        created: n.Created,
        labels: n.Labels ?? {},
      }));
    },
    // The engine's shape, as daemonless prints it (Docker's is GET /networks/{id}).
    inspect: (ref) => c.json('GET', `/corral/networks/${enc(ref)}`),
    remove: (ref) => c.json('DELETE', `/networks/${enc(ref)}`),
    connect: (net, ref, o = {}) =>
      c.json('POST', `/networks/${enc(net)}/connect`, {
        body: {
          Container: ref,
          EndpointConfig: {
            ...(o.ip ? { IPAMConfig: { IPv4Address: o.ip } } : {}),
            Aliases: o.aliases ?? [],
          },
        },
      }),
    disconnect: (net, ref) =>
      c.json('POST', `/networks/${enc(net)}/disconnect`, { body: { Container: ref } }),
    prune: async () => (await c.json<Json>('POST', '/networks/prune')).NetworksDeleted ?? [],
    down() {
      throw new RemoteUnsupported(
        'corral network down',
        "it takes down bridges on corrald's machine: run it there, without --host",
      );
    },
  };
}
