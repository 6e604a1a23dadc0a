// The per-container tasks a keeper runs while its container runs (Docker's daemon runs them
// for its containers): today the health check. A task looks at the stored record first and
// costs nothing (no engine code loaded) for a container that does not need it. To add one:
// a `KeeperTask` in TASKS.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** What a task sees of the record before it loads anything. */
type StoredRecord = { config?: { healthcheck?: { Test?: string[] } } };

export interface KeeperTask {
  name: string;
  /** Whether the container needs it (from the stored record alone). */
  applies(r: StoredRecord): boolean;
  /** Starts it; resolves with the function that stops it (waiting for work in flight). */
  start(root: string, id: string): Promise<() => Promise<void>>;
}

const TASKS: KeeperTask[] = [
  {
    name: 'health',
    applies: (r) => (r.config?.healthcheck?.Test?.length ?? 0) > 0,
    async start(root, id) {
      // A bundle of its own (keeper-health.ts): this one stays small for every keeper.
      const { startHealth } = await import('./keeper-health.js');
      return startHealth(root, id);
    },
  },
];

/** Starts every task the container needs; the returned function stops them all. */
export async function startTasks(root: string, id: string): Promise<() => Promise<void>> {
  let r: StoredRecord;
  try {
    r = JSON.parse(readFileSync(join(root, 'containers', id, 'container.json'), 'utf8'));
  } catch {
    return async () => {};
  }
  const stops = await Promise.all(TASKS.filter((t) => t.applies(r)).map((t) => t.start(root, id)));
  return async () => {
    await Promise.all(stops.map((s) => s()));
  };
}
