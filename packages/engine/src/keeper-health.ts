// The health task's work (keeper-tasks.ts), a bundle of its own: the engine's context, the
// health checks and exec come to about 350 KB, which a keeper reads only for a container that
// has a health check (its other tasks' check reads the stored record alone).
import { execIn } from './attach.js';
import { EngineContext } from './context.js';
import { startHealthChecks } from './health.js';

/** Runs the container's health checks; resolves with the function that stops them. */
export function startHealth(root: string, id: string): () => Promise<void> {
  const ctx = new EngineContext({ root });
  return startHealthChecks(ctx, id, (cmd) => execIn(ctx, id, { cmd }, { stdout: 'pipe', stderr: 'pipe' }));
}
