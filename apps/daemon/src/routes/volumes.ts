import { bad, compareVersions, filtersParam, flag, jsonBody, sendEmpty, sendJson } from '../http.js';
import type { Route } from '../server.js';

const NAME = '([^/]+)';

const stringMap = (v: unknown, field: string): Record<string, string> | undefined => {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object' || Array.isArray(v) || Object.values(v).some((x) => typeof x !== 'string'))
    throw bad(`${field} must be an object of strings`);
  return v as Record<string, string>;
};

/** Docker's /volumes endpoints over engine.volumes (the local driver). */
export const volumeRoutes: Route[] = [
  [
    'GET',
    /^\/volumes$/,
    (call, d) => {
      sendJson(call, 200, { Volumes: d.engine.volumes.list(filtersParam(call.query)), Warnings: [] });
    },
  ],
  [
    'POST',
    /^\/volumes\/create$/,
    async (call, d) => {
      const body = await jsonBody(call);
      for (const k of Object.keys(body))
        if (
          !['Name', 'Driver', 'DriverOpts', 'Labels'].includes(k) &&
          body[k] !== null &&
          body[k] !== undefined
        )
          throw bad(`${k} is not supported by corral`);
      if (body.Name !== undefined && typeof body.Name !== 'string') throw bad('Name must be a string');
      if (body.Driver !== undefined && typeof body.Driver !== 'string') throw bad('Driver must be a string');
      const v = d.engine.volumes.create({
        name: (body.Name as string | undefined) || undefined,
        driver: (body.Driver as string | undefined) || 'local',
        options: stringMap(body.DriverOpts, 'DriverOpts'),
        labels: stringMap(body.Labels, 'Labels'),
      });
      sendJson(call, 201, v);
    },
  ],
  [
    'POST',
    /^\/volumes\/prune$/,
    (call, d) => {
      // Before API 1.42 a prune took every unused volume, named ones too (Docker's change).
      const all = compareVersions(call.version, '1.42') < 0;
      const r = d.engine.volumes.prune({ all, filters: filtersParam(call.query) });
      sendJson(call, 200, { VolumesDeleted: r.removed, SpaceReclaimed: r.spaceReclaimed });
    },
  ],
  [
    'GET',
    new RegExp(`^/volumes/${NAME}$`),
    (call, d) => {
      sendJson(call, 200, d.engine.volumes.inspect(call.params[0]));
    },
  ],
  [
    'DELETE',
    new RegExp(`^/volumes/${NAME}$`),
    (call, d) => {
      d.engine.volumes.remove(call.params[0], { force: flag(call.query, 'force') });
      sendEmpty(call);
    },
  ],
];
