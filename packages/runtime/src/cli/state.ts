// `state` and `list`: read ROOT/ID/state.json and the kernel, load no native module.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { containerState, readState, type StoredState, statusOf } from '../state.js';
import { type Globals, parseFlags, UsageError } from './args.js';
import { writeOut } from './out.js';

/** Exactly `n` positional arguments, or runc's usage error. */
export function exactArgs(command: string, args: string[], n = 1): string[] {
  if (args.length !== n)
    throw new UsageError(`corral-runtime: "${command}" requires exactly ${n} argument(s)`);
  return args;
}

/** The state as runc prints it: pid 0 once stopped, annotations only when there are some, owner. */
export function runcState(root: string, st: StoredState): Record<string, unknown> {
  const s = containerState(root, st);
  return {
    ociVersion: s.ociVersion,
    id: s.id,
    pid: s.status === 'stopped' ? 0 : s.pid,
    status: s.status,
    bundle: s.bundle,
    rootfs: s.rootfs,
    created: s.created,
    ...(Object.keys(s.annotations).length ? { annotations: s.annotations } : {}),
    owner: '',
  };
}

export async function state(g: Globals, argv: string[]): Promise<number> {
  const { args } = parseFlags(argv, {});
  const [id] = exactArgs('state', args);
  writeOut(JSON.stringify(runcState(g.root, readState(g.root, id)), null, 2));
  return 0;
}

/** Go's text/tabwriter as runc's list uses it: min width 12, padding 3, last column bare. */
function table(rows: string[][]): string {
  const widths = rows[0].map((_, c) => Math.max(12, ...rows.map((r) => r[c].length + 3)));
  return rows
    .map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]))).join(''))
    .join('\n')
    .concat('\n');
}

function ownerOf(dir: string): string {
  try {
    const uid = statSync(dir).uid;
    return uid === 0 ? 'root' : `#${uid}`;
  } catch {
    return '';
  }
}

export async function list(g: Globals, argv: string[]): Promise<number> {
  const { flags } = parseFlags(argv, {
    format: { type: 'string', alias: ['f'] },
    quiet: { type: 'bool', alias: ['q'] },
  });
  const format = (flags.format as string | undefined) ?? 'table';
  if (format !== 'table' && format !== 'json') throw new UsageError(`invalid format option: ${format}`);
  let ids: string[] = [];
  try {
    ids = readdirSync(g.root).sort();
  } catch {
    // no root yet: no containers
  }
  const states: Record<string, unknown>[] = [];
  for (const id of ids) {
    let st: StoredState;
    try {
      st = readState(g.root, id);
    } catch {
      continue; // a create in progress, or not a container
    }
    states.push({ ...runcState(g.root, st), owner: ownerOf(join(g.root, id)), status: statusOf(g.root, st) });
  }
  if (flags.quiet) {
    for (const s of states) writeOut(`${s.id}\n`);
  } else if (format === 'json') {
    writeOut(`${states.length ? JSON.stringify(states) : 'null'}\n`);
  } else {
    const rows = [['ID', 'PID', 'STATUS', 'BUNDLE', 'CREATED', 'OWNER']];
    for (const s of states) rows.push([s.id, s.pid, s.status, s.bundle, s.created, s.owner].map(String));
    writeOut(table(rows));
  }
  return 0;
}
