// start, kill, delete, pause and resume: one call of the runtime each, on the stored state.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseSignal } from '@corral/sys';
import { Runtime } from '../runtime.js';
import { type Globals, parseFlags, UsageError } from './args.js';
import { log } from './log.js';
import { exactArgs } from './state.js';

export async function start(g: Globals, argv: string[]): Promise<number> {
  const [id] = exactArgs('start', parseFlags(argv, {}).args);
  await new Runtime({ root: g.root }).start(id);
  return 0;
}

export async function kill(g: Globals, argv: string[]): Promise<number> {
  const { flags, args } = parseFlags(argv, { all: { type: 'bool', alias: ['a'] } });
  if (args.length < 1 || args.length > 2)
    throw new UsageError('corral-runtime: "kill" requires a minimum of 1 and a maximum of 2 arguments');
  const [id, name = 'SIGTERM'] = args;
  let signal: number;
  try {
    signal = parseSignal(name);
  } catch {
    throw new Error(`unknown signal "${name}"`);
  }
  const rt = new Runtime({ root: g.root });
  if (flags.all) await rt.killAll(id, signal);
  else rt.kill(id, signal);
  return 0;
}

export async function remove(g: Globals, argv: string[]): Promise<number> {
  const { flags, args } = parseFlags(argv, { force: { type: 'bool', alias: ['f'] } });
  const [id] = exactArgs('delete', args);
  const rt = new Runtime({ root: g.root });
  // runc: deleting a container that is not there succeeds with --force.
  if (flags.force && !existsSync(join(rt.root, id))) return 0;
  for (const w of await rt.delete(id, { force: flags.force === true })) log('warning', w);
  return 0;
}

export async function pause(g: Globals, argv: string[]): Promise<number> {
  const [id] = exactArgs('pause', parseFlags(argv, {}).args);
  await new Runtime({ root: g.root }).pause(id);
  return 0;
}

export async function resume(g: Globals, argv: string[]): Promise<number> {
  const [id] = exactArgs('resume', parseFlags(argv, {}).args);
  await new Runtime({ root: g.root }).resume(id);
  return 0;
}
