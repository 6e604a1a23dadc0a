import { since } from '@corral/engine';

/** Prints rows as Docker does: columns padded to the widest cell, three spaces apart. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i])))
      .join('   ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

/** A command line cut to `max` characters in quotes, like docker ps's COMMAND column. */
export function quoteCommand(cmd: string, max = 20): string {
  const s = cmd.length > max ? `${cmd.slice(0, max - 1)}…` : cmd;
  return `"${s}"`;
}

/** `3 seconds ago`, `2 hours ago`: the CREATED column. */
export function ago(iso: string): string {
  return `${since(iso)} ago`;
}
