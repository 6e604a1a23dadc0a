import { EngineError } from '@corral/engine';
import type { Command } from '../args.js';
import { renderOne } from '../templated.js';
import { engine, str } from './common.js';

export const inspect: Command = {
  name: 'inspect',
  usage: 'inspect [OPTIONS] NAME|ID [NAME|ID...]',
  description: 'Show low-level information on containers or images as JSON',
  flags: [
    {
      name: 'format',
      short: 'f',
      type: 'string',
      value: 'string',
      description: 'A Go template for each object ({{.State.Pid}}, {{json .Config}} ...)',
    },
  ],
  args: { min: 1 },
  async run(a, ctx) {
    const e = await engine(ctx);
    // Like docker: a container by that name or id, else an image.
    const out: unknown[] = [];
    for (const ref of a.positionals) {
      try {
        out.push(await e.inspect(ref));
      } catch (err) {
        if (!(err instanceof EngineError)) throw err;
        try {
          out.push(await e.images.inspect(ref));
        } catch {
          throw new EngineError('NotFound', `No such object: ${ref}`);
        }
      }
    }
    const format = str(a, 'format');
    if (format === undefined) console.log(JSON.stringify(out, null, 4));
    else if (format === 'json') console.log(JSON.stringify(out));
    else for (const o of out) console.log(renderOne(format, dockerStateView(o)));
    return 0;
  },
};

/**
 * Docker's State also says Running and Dead, which scripts test (`{{.State.Running}}`);
 * corral's record has them as its status: the template sees both.
 */
function dockerStateView(o: unknown): unknown {
  const state = (o as { state?: { status?: unknown } }).state;
  if (typeof state?.status !== 'string') return o;
  return {
    ...(o as object),
    state: { ...state, running: state.status === 'running', dead: state.status === 'dead' },
  };
}
