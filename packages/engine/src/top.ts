// docker top with ps_args: as dockerd does, the host's `ps` runs with the client's arguments
// and only the rows of the container's processes are kept (found by the PID column). So every
// option the host's ps knows works (-ef, aux, -o pid,comm, -L, ...), with ps's own words for
// one it does not.
import { execFile } from 'node:child_process';
import type { ProcessNode } from '@corral/pidns';
import { EngineError } from './errors.js';

export interface PsTable {
  Titles: string[];
  Processes: string[][];
}

/** Host PIDs of a process tree (Engine.top's answer), parents first. */
export function treePids(nodes: readonly ProcessNode[]): number[] {
  const out: number[] = [];
  const walk = (ns: readonly ProcessNode[]) => {
    for (const n of ns) {
      out.push(n.hostPid);
      walk(n.children);
    }
  };
  walk(nodes);
  return out;
}

function ps(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      'ps',
      args,
      { maxBuffer: 16 << 20, env: { ...process.env, LC_ALL: 'C' } },
      (err, stdout, stderr) => {
        if (!err) return resolve(stdout);
        // ps's first line says why (an unknown option, a bad format).
        const why = String(stderr).split('\n')[0]?.trim() || err.message;
        reject(new EngineError('InvalidArgument', `ps: ${why}`));
      },
    );
  });
}

/** Splits on ASCII blanks only (as dockerd: a command's unicode spaces stay in it). */
const fields = (line: string) => line.split(/[ \t\r\n\v\f]+/).filter(Boolean);

/** The rows of `output` whose PID column is one of `pids`; the last column keeps its spaces. */
export function parsePs(output: string, pids: readonly number[]): PsTable {
  const lines = output.split('\n');
  const titles = fields(lines[0] ?? '');
  const pidIndex = titles.indexOf('PID');
  if (pidIndex < 0)
    throw new EngineError('InvalidArgument', "ps_args: ps's output has no PID column (add pid to -o)");
  const wanted = new Set(pids);
  const rows: string[][] = [];
  for (const line of lines.slice(1)) {
    const f = fields(line);
    if (f.length <= pidIndex) continue;
    const pid = Number(f[pidIndex]);
    if (!Number.isInteger(pid) || !wanted.has(pid)) continue;
    const last = titles.length - 1;
    rows.push(f.length > titles.length ? [...f.slice(0, last), f.slice(last).join(' ')] : f);
  }
  return { Titles: titles, Processes: rows };
}

/**
 * ps with `psArgs` (default -ef) for the processes `pids`: first with `-q PIDS` (ps then looks
 * at those only), and without when ps refuses that with these options (BSD `f`, for one).
 * A `KEY=PID` in -o other than pid= is refused as dockerd does (it would hide the column).
 */
export async function psTop(pids: readonly number[], psArgs = ''): Promise<PsTable> {
  const text = psArgs.trim() || '-ef';
  for (const m of text.matchAll(/\s+([^\s]*)=\s*(PID[^\s]*)/g))
    if (m[1] !== 'pid')
      throw new EngineError('InvalidArgument', `specifying "${m[1]}=${m[2]}" is not allowed`);
  const args = text.split(/\s+/);
  let output: string;
  try {
    output = pids.length ? await ps([...args, '-q', pids.join(',')]) : await ps(args);
  } catch {
    output = await ps(args);
  }
  return parsePs(output, pids);
}
