import { type EngineEvent, parseFilters, parseTime } from '@corral/engine';
import { type Command, UsageError } from '../args.js';
import { onSignals } from '../attach.js';
import { engine, list, str } from './common.js';

/** Docker's text line: `2024-01-02T03:04:05.123456789Z container start ID (image=busybox, name=web)`. */
function line(e: EngineEvent): string {
  const ms = Math.round(e.timeNano / 1e6);
  const when = `${new Date(ms).toISOString().slice(0, 23)}000000Z`;
  const attrs = Object.entries(e.Actor.Attributes)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');
  return `${when} ${e.Type} ${e.Action} ${e.Actor.ID}${attrs ? ` (${attrs})` : ''}`;
}

export const events: Command = {
  name: 'events',
  usage: 'events [OPTIONS]',
  description: 'Get real time events from the engine (containers and images)',
  flags: [
    {
      name: 'since',
      type: 'string',
      value: 'TIME',
      description: 'Show events since a timestamp, date or duration (10m)',
    },
    { name: 'until', type: 'string', value: 'TIME', description: 'Stream events until this time' },
    {
      name: 'filter',
      short: 'f',
      type: 'list',
      value: 'KEY=VALUE',
      description: 'Filter: container=, image=, event=, type=',
    },
    { name: 'format', type: 'string', value: 'json', description: 'Print JSON lines' },
  ],
  args: { min: 0, max: 0 },
  async run(a, ctx) {
    const format = str(a, 'format');
    if (format !== undefined && format !== 'json' && format !== '{{json .}}')
      throw new UsageError(`unsupported format ${format}: json`);
    const since = str(a, 'since');
    const until = str(a, 'until');
    const stopped = new AbortController();
    const stop = onSignals(() => stopped.abort());
    try {
      const stream = (await engine(ctx)).events({
        since: since === undefined ? undefined : parseTime(since),
        until: until === undefined ? undefined : parseTime(until),
        filters: parseFilters(list(a, 'filter')),
        signal: stopped.signal,
      });
      for await (const e of stream) console.log(format ? JSON.stringify(e) : line(e));
    } finally {
      stop();
    }
    return 0;
  },
};
