import { healthSuffix } from './health.js';
import type { ContainerRecord } from './records.js';

/** How long ago `iso` was, as Docker words it: `Less than a second`, `3 seconds`, `2 hours`. */
export function since(iso: string | null): string {
  if (!iso) return '';
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 1) return 'Less than a second';
  if (s < 60) return `${Math.floor(s)} seconds`;
  if (s < 3600) return `${Math.floor(s / 60)} minutes`;
  if (s < 86400) return `${Math.floor(s / 3600)} hours`;
  return `${Math.floor(s / 86400)} days`;
}

/** Docker's STATUS column: `Up 3 seconds (healthy)`, `Exited (3) 2 minutes ago`, `Created`. */
export function describeStatus(r: ContainerRecord): string {
  if (r.state.status === 'running')
    return `Up ${since(r.state.startedAt)}${r.state.paused ? ' (Paused)' : healthSuffix(r.state.health)}`;
  // Docker words a container in its restart back-off this way, with the last run's code.
  if (r.state.restarting) return `Restarting (${r.state.exitCode}) ${since(r.state.finishedAt)} ago`;
  if (r.state.status === 'exited') return `Exited (${r.state.exitCode}) ${since(r.state.finishedAt)} ago`;
  return 'Created';
}
