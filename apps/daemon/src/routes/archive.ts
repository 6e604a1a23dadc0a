// docker cp's endpoints: HEAD (stat), GET (a tar out) and PUT (a tar in) of
// /containers/{id}/archive?path=. The engine resolves every path inside the container's root.
import type { PathStat } from '@corral/engine';
import { bad, type Call, flag, mustRes } from '../http.js';
import type { Route } from '../server.js';
import type { DaemonState } from '../state.js';

const ID = '([^/]+)';

/** The X-Docker-Container-Path-Stat header: the stat as base64 JSON. */
const statHeader = (s: PathStat) => Buffer.from(JSON.stringify(s)).toString('base64');

function pathOf(call: Call): string {
  const path = call.query.get('path');
  if (!path) throw bad('path is required');
  return path;
}

export const archiveRoutes: Route[] = [
  [
    'HEAD',
    new RegExp(`^/containers/${ID}/archive$`),
    async (call, d: DaemonState) => {
      const s = await d.engine.archive.stat(call.params[0], pathOf(call));
      const res = mustRes(call);
      res.writeHead(200, {
        'X-Docker-Container-Path-Stat': statHeader(s),
        'Content-Type': 'application/x-tar',
      });
      res.end();
    },
  ],
  [
    'GET',
    new RegExp(`^/containers/${ID}/archive$`),
    async (call, d: DaemonState) => {
      const res = mustRes(call);
      // The stat goes in the headers, before the first byte of the tar (errors before it are JSON).
      await d.engine.archive.get(call.params[0], pathOf(call), res, (s) =>
        res.writeHead(200, {
          'X-Docker-Container-Path-Stat': statHeader(s),
          'Content-Type': 'application/x-tar',
        }),
      );
    },
  ],
  [
    'PUT',
    new RegExp(`^/containers/${ID}/archive$`),
    async (call, d: DaemonState) => {
      await d.engine.archive.put(call.params[0], pathOf(call), call.req, {
        noOverwriteDirNonDir: flag(call.query, 'noOverwriteDirNonDir'),
        keepOwners: flag(call.query, 'copyUIDGID'),
      });
      const res = mustRes(call);
      res.writeHead(200);
      res.end();
    },
  ],
];
