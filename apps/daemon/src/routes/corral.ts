// corral's own endpoints, beside Docker's (as podman serves /libpod/ beside its compat API): the
// engine's shapes where Docker's JSON lacks what the corral CLI prints, so that `corral --host`
// prints what the daemonless CLI prints. Read-only; every change goes through Docker's endpoints.
import { sendJson } from '../http.js';
import type { Route } from '../server.js';

const ID = '([^/]+)';

export const corralRoutes: Route[] = [
  ['GET', /^\/corral\/version$/, (call, d) => sendJson(call, 200, d.engine.version())],
  ['GET', /^\/corral\/info$/, (call, d) => sendJson(call, 200, d.engine.info())],
  // The record as `corral inspect` prints it (Docker's inspect is GET /containers/{id}/json).
  [
    'GET',
    new RegExp(`^/corral/containers/${ID}/json$`),
    (call, d) => sendJson(call, 200, d.engine.inspect(call.params[0])),
  ],
  // A network as `corral network inspect` prints it (with its bridge and containers).
  [
    'GET',
    new RegExp(`^/corral/networks/${ID}$`),
    async (call, d) => sendJson(call, 200, await d.engine.networks.inspect(call.params[0])),
  ],
  // The process tree with PIDs inside the container (Docker's top has host PIDs only).
  [
    'GET',
    new RegExp(`^/corral/containers/${ID}/top$`),
    (call, d) => sendJson(call, 200, d.engine.top(call.params[0])),
  ],
];
