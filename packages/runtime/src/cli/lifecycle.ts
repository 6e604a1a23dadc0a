// start, kill, delete, pause and resume: one call of the runtime each, on the stored state.
// start and the delete of a stopped container need no more than the state and the cgroup
// folders (start-stop.ts), kill of the init the state and a pidfd (signal-init.ts): the
// runtime loads only when needed (its own bundle chunk: see scripts/bundle.mjs).
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseSignal } from '@corral/sys';
import { RuntimeError } from '../errors.js';
import { signalInit } from '../signal-init.js';
import {
  cgroupPids,
  poststop,
  removableWithoutKill,
  removeCgroupDirs,
  startContainer,
} from '../start-stop.js';
import { readState } from '../state.js';
import { type Globals, parseFlags, UsageError } from './args.js';
import { log } from './log.js';
import { exactArgs } from './state.js';

const SIGKILL = 9;

async function runtime(g: Globals) {
  const { Runtime } = await import('../runtime.js');
  return new Runtime({ root: g.root });
}

export async function start(g: Globals, argv: string[]): Promise<number> {
  const [id] = exactArgs('start', parseFlags(argv, {}).args);
  const failed = await startContainer(g.root, id);
  if (failed) {
    // runc's behaviour: a failed poststart hook ends the container.
    try {
      signalInit(readState(g.root, id), SIGKILL);
    } catch (e) {
      if (!(e instanceof RuntimeError)) throw e; // already gone
    }
    throw failed;
  }
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
  // The init alone needs no more than its state and a pidfd; --all freezes the cgroup.
  if (flags.all) await (await runtime(g)).killAll(id, signal);
  else signalInit(readState(g.root, id), signal);
  return 0;
}

export async function remove(g: Globals, argv: string[]): Promise<number> {
  const { flags, args } = parseFlags(argv, { force: { type: 'bool', alias: ['f'] } });
  const [id] = exactArgs('delete', args);
  // runc: deleting a container that is not there succeeds with --force.
  if (flags.force && !existsSync(join(g.root, id))) return 0;
  let warnings: string[];
  const st = existsSync(join(g.root, id, 'state.json')) ? readState(g.root, id) : null;
  if (st && removableWithoutKill(g.root, st) && cgroupPids(st)?.length === 0) {
    // The common case (podman, the shim): a stopped container, nothing left in its cgroup.
    await removeCgroupDirs(st);
    rmSync(join(g.root, id), { recursive: true, force: true });
    warnings = poststop(st);
  } else {
    warnings = await (await runtime(g)).delete(id, { force: flags.force === true });
  }
  for (const w of warnings) log('warning', w);
  return 0;
}

export async function pause(g: Globals, argv: string[]): Promise<number> {
  const [id] = exactArgs('pause', parseFlags(argv, {}).args);
  await (await runtime(g)).pause(id);
  return 0;
}

export async function resume(g: Globals, argv: string[]): Promise<number> {
  const [id] = exactArgs('resume', parseFlags(argv, {}).args);
  await (await runtime(g)).resume(id);
  return 0;
}
