import { entryBytes, parseTime } from '@corral/engine';
import type { Command } from '../args.js';
import { bool, engine, int, str } from './common.js';

/** --since / --until: RFC 3339, a Unix timestamp, or a duration back from now (`10m`, `1h30m`). */
const timeFlag = (v: string | undefined) => (v === undefined ? undefined : parseTime(v));

export const logs: Command = {
  name: 'logs',
  usage: 'logs [OPTIONS] CONTAINER',
  description: 'Print what a container wrote to stdout and stderr',
  flags: [
    {
      name: 'follow',
      short: 'f',
      type: 'boolean',
      description: 'Follow the output until the container ends',
    },
    {
      name: 'since',
      type: 'string',
      value: 'string',
      description: 'Show logs since a timestamp (2013-01-02T13:23:37Z) or relative (42m for 42 minutes)',
    },
    { name: 'tail', short: 'n', type: 'string', description: 'Number of lines from the end (default all)' },
    { name: 'timestamps', short: 't', type: 'boolean', description: 'Show timestamps' },
    {
      name: 'until',
      type: 'string',
      value: 'string',
      description: 'Show logs before a timestamp (2013-01-02T13:23:37Z) or relative (42m for 42 minutes)',
    },
  ],
  args: { min: 1, max: 1 },
  async run(a, ctx) {
    const tailFlag = str(a, 'tail');
    const tail = tailFlag === undefined || tailFlag === 'all' ? undefined : int(a, 'tail');
    const since = timeFlag(str(a, 'since'));
    const until = timeFlag(str(a, 'until'));
    for await (const entry of (await engine(ctx)).logs(a.positionals[0], {
      follow: bool(a, 'follow'),
      tail,
      since,
      until,
    })) {
      const out = entry.stream === 'stderr' ? process.stderr : process.stdout;
      if (bool(a, 'timestamps')) out.write(`${entry.time} `);
      out.write(entryBytes(entry));
    }
    return 0;
  },
};
