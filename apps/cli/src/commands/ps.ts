import { type ContainerSummary, formatBytes, formatPorts, shortId } from '@corral/engine';
import { type Command, UsageError } from '../args.js';
import { ago, quoteCommand, table } from '../format.js';
import { println } from '../print.js';
import { HEADERS, isTemplate, psRow, renderRows } from '../templated.js';
import { bool, int, type ListingBackend, list, listing, str } from './common.js';

/** `--filter k=v` flags grouped by key (Docker's form); the engine checks the keys. */
export function filterFlags(values: readonly string[]): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const f of values) {
    const eq = f.indexOf('=');
    if (eq <= 0) throw new UsageError(`bad format of filter (expected name=value): ${f}`);
    const key = f.slice(0, eq);
    out[key] = [...(out[key] ?? []), f.slice(eq + 1)];
  }
  return out;
}

/** Docker's SIZE column: `2B (virtual 4.26MB)`. */
const sizeColumn = (s: { rw: number; rootFs: number }) =>
  `${formatBytes(s.rw)} (virtual ${formatBytes(s.rootFs)})`;

export const ps: Command = {
  name: 'ps',
  usage: 'ps [OPTIONS]',
  description: 'List containers',
  flags: [
    {
      name: 'all',
      short: 'a',
      type: 'boolean',
      description: 'Show all containers (default shows just running)',
    },
    {
      name: 'filter',
      short: 'f',
      type: 'list',
      value: 'filter',
      description:
        'Filter output based on conditions provided: id, name, label=K[=V], status, exited, ancestor, before, since',
    },
    {
      name: 'format',
      type: 'string',
      value: 'string',
      description: "'json' (JSON lines), 'table TEMPLATE' or a Go template ({{.ID}} {{.Names}} ...)",
    },
    {
      name: 'last',
      short: 'n',
      type: 'string',
      value: 'int',
      description: 'Show n last created containers (includes all states)',
    },
    {
      name: 'latest',
      short: 'l',
      type: 'boolean',
      description: 'Show the latest created container (includes all states)',
    },
    { name: 'no-trunc', type: 'boolean', description: "Don't truncate output" },
    { name: 'quiet', short: 'q', type: 'boolean', description: 'Only display container IDs' },
    { name: 'size', short: 's', type: 'boolean', description: 'Display total file sizes' },
  ],
  args: { min: 0, max: 0 },
  async run(a, ctx) {
    // A full reclaim, as every command's: what a dead run left (trash, mounts, a network) goes
    // at the next command, a listing too (the listing opens the Engine for it when needed).
    const e = await listing(ctx);
    const last = bool(a, 'latest') ? 1 : int(a, 'last');
    let rows: ContainerSummary[] = await e.list({
      all: bool(a, 'all') || (last !== undefined && last > 0),
      filters: filterFlags(list(a, 'filter')),
    });
    if (last !== undefined && last > 0) rows = rows.slice(0, last);
    const full = bool(a, 'no-trunc');
    const format = str(a, 'format');
    const withSize = bool(a, 'size') || (isTemplate(format) && format.includes('.Size'));
    const sizes = new Map<string, { rw: number; rootFs: number } | null>();
    for (const r of rows) sizes.set(r.id, withSize ? await sizeOf(e, r.id) : null);
    if (bool(a, 'quiet')) {
      for (const r of rows) println(full ? r.id : shortId(r.id));
    } else if (format === 'json') {
      for (const r of rows) println(JSON.stringify(r));
    } else if (isTemplate(format)) {
      const out = renderRows(
        format,
        rows.map((r) => {
          const s = sizes.get(r.id);
          return psRow({ ...r, size: s ? sizeColumn(s) : '' }, full);
        }),
        HEADERS.ps,
      );
      if (out) println(out);
    } else {
      const header = ['CONTAINER ID', 'IMAGE', 'COMMAND', 'CREATED', 'STATUS', 'PORTS', 'NAMES'];
      const cells = rows.map((r) => {
        const row = [
          full ? r.id : shortId(r.id),
          r.image,
          full ? JSON.stringify(r.command) : quoteCommand(r.command),
          ago(r.created),
          r.status,
          formatPorts(r.ports),
          r.name,
        ];
        const s = sizes.get(r.id);
        return s ? [...row, sizeColumn(s)] : row;
      });
      println(table(withSize ? [...header, 'SIZE'] : header, cells));
    }
    return 0;
  },
};

async function sizeOf(e: ListingBackend, id: string) {
  try {
    return await e.size(id);
  } catch {
    return { rw: 0, rootFs: 0 }; // removed meanwhile
  }
}
