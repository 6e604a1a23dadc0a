import type { ProgressEvent, RegistryAuth } from '@corral/engine';
import type { Call } from '../http.js';
import { bad, clientGone, filtersParam, flag, jsonStream, mustRes, sendJson } from '../http.js';
import type { Route } from '../server.js';
import type { DaemonState } from '../state.js';

const NAME = '(.+?)';
const secs = (iso?: string) => (iso ? Math.floor(Date.parse(iso) / 1000) || 0 : 0);

/** Docker's JSON progress line for an engine progress event (a pull's words or a push's). */
function progressLine(e: ProgressEvent, push: boolean) {
  const words: Record<string, string> = push
    ? {
        waiting: 'Waiting',
        exists: 'Layer already exists',
        uploading: 'Pushing',
        mounted: 'Mounted from',
        done: 'Pushed',
        retrying: 'Retrying',
        failed: 'Failed',
      }
    : {
        waiting: 'Waiting',
        exists: 'Already exists',
        downloading: 'Downloading',
        done: 'Pull complete',
        retrying: 'Retrying',
        failed: 'Failed',
      };
  // Only moving bytes carry a progress bar: the CLI prints no line for a bar without a terminal.
  const moving = e.status === 'downloading' || e.status === 'uploading';
  return {
    status: words[e.status] ?? e.status,
    id: e.id,
    progressDetail: moving && e.total ? { current: e.current, total: e.total } : {},
  };
}

/**
 * X-Registry-Auth (base64url JSON, Docker's AuthConfig): the credentials a client sends with a
 * pull or push (the docker CLI's, kept since its `docker login`); none when empty or `{}`.
 */
export function registryAuth(call: Call): RegistryAuth | undefined {
  const h = call.req.headers['x-registry-auth'];
  if (typeof h !== 'string' || !h) return undefined;
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(Buffer.from(h, 'base64url').toString('utf8'));
  } catch {
    throw bad('invalid X-Registry-Auth header: not base64url JSON');
  }
  if (!v || typeof v !== 'object') throw bad('invalid X-Registry-Auth header: not a JSON object');
  for (const k of ['identitytoken', 'registrytoken'])
    if (v[k] !== undefined && typeof v[k] !== 'string')
      throw bad(`invalid X-Registry-Auth header: ${k} is a string`);
  // A token in place of the password (dockerd's order: the registry token first): the identity
  // token is traded at the registry's token service as an OAuth2 refresh token.
  const tokens = {
    ...(v.registrytoken ? { registryToken: v.registrytoken as string } : {}),
    ...(v.identitytoken ? { identityToken: v.identitytoken as string } : {}),
  };
  if (tokens.registryToken || tokens.identityToken)
    return {
      username: typeof v.username === 'string' && v.username ? v.username : '<token>',
      password: '',
      ...tokens,
    };
  let { username, password } = v as { username?: unknown; password?: unknown };
  // The older form: `auth`, base64 of user:password.
  if (!username && typeof v.auth === 'string' && v.auth) {
    const plain = Buffer.from(v.auth, 'base64').toString('utf8');
    const colon = plain.indexOf(':');
    if (colon > 0) [username, password] = [plain.slice(0, colon), plain.slice(colon + 1)];
  }
  if (!username && !password) return undefined;
  if (typeof username !== 'string' || typeof password !== 'string' || !username)
    throw bad('invalid X-Registry-Auth header: username and password are strings');
  return { username, password };
}

async function streamed(call: Call, work: (write: (v: unknown) => void) => Promise<void>): Promise<void> {
  const out = jsonStream(call);
  try {
    await work(out.write);
  } catch (e) {
    out.write({ errorDetail: { message: (e as Error).message }, error: (e as Error).message });
  }
  out.end();
}

/**
 * POST /images/create?fromSrc=- (docker import): the request body is a rootfs tarball; repo,
 * tag, message and changes (Dockerfile instructions) as dockerd takes them. `fromSrc=URL`:
 * the engine fetches the tarball (`importUrl`); a refused fetch is an error status, as with
 * dockerd, and the fetch's progress follows once it answers.
 */
async function importImage(call: Call, d: DaemonState): Promise<void> {
  const src = call.query.get('fromSrc')!;
  const repo = call.query.get('repo');
  const tag = call.query.get('tag');
  if (!repo && tag) throw bad('tag needs repo');
  const platform = call.query.get('platform');
  if (platform && platform !== 'linux' && !platform.startsWith('linux/'))
    throw bad(`platform ${platform} is not supported`);
  // The docker CLI sends the whole name as repo (tag empty).
  const name = repo ? (tag ? `${repo}:${tag}` : repo) : undefined;
  const options = {
    names: name ? [name] : [],
    changes: call.query.getAll('changes'),
    message: call.query.get('message') ?? undefined,
  };
  if (src === '-') {
    const rec = await d.engine.images.import(call.req, options);
    const out = jsonStream(call);
    out.write({ status: rec.id });
    return out.end();
  }
  call.req.resume(); // no body is expected
  // Opened at the fetch's first report (it answered): from then on, errors go in the stream.
  const progress = { out: null as ReturnType<typeof jsonStream> | null, last: 0 };
  const opened = (url: string) => {
    if (!progress.out) {
      progress.out = jsonStream(call);
      progress.out.write({ status: `Downloading from ${url}` });
    }
    return progress.out;
  };
  try {
    const rec = await d.engine.images.importUrl(src, {
      ...options,
      signal: clientGone(call),
      onFetch: (p) => {
        const out = opened(p.url);
        // A line every 100 ms at most, as dockerd's progress reader.
        if (!p.current || Date.now() - progress.last < 100) return;
        progress.last = Date.now();
        out.write({
          status: 'Importing',
          progressDetail: p.total ? { current: p.current, total: p.total } : { current: p.current },
        });
      },
    });
    opened(src).write({ status: rec.id });
  } catch (e) {
    if (!progress.out) throw e;
    progress.out.write({ errorDetail: { message: (e as Error).message }, error: (e as Error).message });
  }
  progress.out?.end();
}

function imageRow(i: ReturnType<DaemonState['engine']['images']['list']>[number]) {
  return {
    Id: i.id,
    ParentId: '',
    RepoTags: i.repoTags,
    RepoDigests: [],
    Created: secs(i.created),
    Size: i.size,
    SharedSize: -1,
    VirtualSize: i.size,
    Labels: {},
    Containers: -1,
  };
}

export const imageRoutes: Route[] = [
  ['GET', /^\/images\/json$/, (call, d) => sendJson(call, 200, d.engine.images.list().map(imageRow))],
  [
    'POST',
    /^\/images\/create$/,
    async (call, d) => {
      const from = call.query.get('fromImage');
      if (!from) {
        if (call.query.get('fromSrc')) return importImage(call, d);
        throw bad('fromImage or fromSrc is required');
      }
      const auth = registryAuth(call);
      const tag = call.query.get('tag');
      const name = tag ? (tag.startsWith('sha256:') ? `${from}@${tag}` : `${from}:${tag}`) : from;
      const platform = call.query.get('platform') || undefined;
      // A name the engine does not know fails before any header is sent: a 404 the client shows.
      await streamed(call, async (write) => {
        write({ status: `Pulling from ${from}`, id: tag || 'latest' });
        const { digest } = await d.engine.images.pull(name, {
          platform,
          auth,
          // A client that goes away ends the pull: no half image is left (whole layers may stay).
          signal: clientGone(call),
          onProgress: (e) => {
            if (e.kind === 'layer') write(progressLine(e, false));
          },
        });
        write({ status: `Digest: ${digest}` });
        write({ status: `Status: Downloaded newer image for ${name}` });
      });
    },
  ],
  [
    'POST',
    /^\/images\/load$/,
    async (call, d) => {
      const quiet = flag(call.query, 'quiet');
      const r = await d.engine.images.load(call.req);
      const out = jsonStream(call);
      for (const img of r.images)
        for (const n of img.names.length ? img.names : [img.id])
          out.write({ stream: n === img.id ? `Loaded image ID: ${n}\n` : `Loaded image: ${n}\n` });
      void quiet;
      out.end();
    },
  ],
  [
    'GET',
    /^\/images\/get$/,
    async (call, d) => {
      const names = call.query.getAll('names');
      if (!names.length) throw bad('names is required');
      for (const n of names) await d.engine.images.inspect(n); // 404 before the tar starts
      const res = mustRes(call);
      res.writeHead(200, { 'Content-Type': 'application/x-tar' });
      await d.engine.images.save(names, res);
    },
  ],
  [
    'GET',
    new RegExp(`^/images/${NAME}/get$`),
    async (call, d) => {
      await d.engine.images.inspect(call.params[0]);
      const res = mustRes(call);
      res.writeHead(200, { 'Content-Type': 'application/x-tar' });
      await d.engine.images.save([call.params[0]], res);
    },
  ],
  [
    'POST',
    /^\/images\/prune$/,
    async (call, d) => {
      const filters = filtersParam(call.query);
      const all = filters.dangling?.includes('false') ?? false;
      const until = filters.until?.[0];
      const r = await d.engine.images.prune({ all, ...(until !== undefined ? { until } : {}) });
      sendJson(call, 200, {
        ImagesDeleted: r.deletedImages.map((id) => ({ Deleted: id })),
        SpaceReclaimed: r.reclaimedBytes,
      });
    },
  ],
  [
    'GET',
    new RegExp(`^/images/${NAME}/json$`),
    async (call, d) => sendJson(call, 200, await d.engine.images.inspect(call.params[0])),
  ],
  [
    'GET',
    new RegExp(`^/images/${NAME}/history$`),
    async (call, d) => {
      const rows = await d.engine.images.history(call.params[0]);
      const tags = d.engine.images
        .list()
        .find((i) => i.id === d.engine.images.resolve(call.params[0])?.id)?.repoTags;
      sendJson(
        call,
        200,
        rows.map((h, i) => ({
          Id: h.id || '<missing>',
          Created: secs(h.created),
          CreatedBy: h.createdBy,
          Tags: i === 0 ? (tags ?? null) : null,
          Size: h.size,
          Comment: h.comment,
        })),
      );
    },
  ],
  [
    'POST',
    new RegExp(`^/images/${NAME}/tag$`),
    async (call, d) => {
      const repo = call.query.get('repo');
      if (!repo) throw bad('repo is required');
      await d.engine.images.tag(call.params[0], `${repo}:${call.query.get('tag') || 'latest'}`);
      sendJson(call, 201, {});
    },
  ],
  [
    'POST',
    new RegExp(`^/images/${NAME}/push$`),
    async (call, d) => {
      const auth = registryAuth(call);
      const tag = call.query.get('tag');
      const name = tag ? `${call.params[0]}:${tag}` : call.params[0];
      await d.engine.images.inspect(name);
      await streamed(call, async (write) => {
        write({ status: `The push refers to repository [${call.params[0]}]` });
        const { digest } = await d.engine.images.push(name, {
          auth,
          onProgress: (e) => {
            if (e.kind === 'layer') write(progressLine(e, true));
          },
        });
        // The CLI prints a status line, and hands a line with `aux` to its callback unprinted.
        write({ status: `${tag || 'latest'}: digest: ${digest}` });
        write({ progressDetail: {}, aux: { Tag: tag || 'latest', Digest: digest } });
      });
    },
  ],
  [
    'DELETE',
    new RegExp(`^/images/${NAME}$`),
    async (call, d) => {
      const r = await d.engine.images.remove(call.params[0], { force: flag(call.query, 'force') });
      sendJson(call, 200, [
        ...r.untagged.map((u) => ({ Untagged: u })),
        ...r.deleted.map((x) => ({ Deleted: x })),
      ]);
    },
  ],
];
