import { cpuPercent, memoryPercent, memoryUsed, type StatsSample, shortId } from '@corral/engine';
import { type Command, UsageError } from '../args.js';
import { table } from '../format.js';
import { HEADERS, isTemplate, renderRows } from '../templated.js';
import { engine } from './common.js';

/** Docker's memory units: binary (KiB, MiB, GiB). */
export function binaryBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i ? n.toFixed(2).replace(/\.?0+$/, '') : n}${units[i]}`;
}

/** Docker's IO units: decimal (kB, MB, GB). */
export function decimalBytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return `${i ? n.toFixed(3).replace(/\.?0+$/, '') : n}${units[i]}`;
}

function row(s: StatsSample) {
  const cpu = cpuPercent(s.precpu, s.stats);
  return {
    ID: shortId(s.id),
    Name: s.name,
    CPUPerc: `${cpu.toFixed(2)}%`,
    MemUsage: `${binaryBytes(memoryUsed(s.stats))} / ${binaryBytes(s.stats.memory.limit)}`,
    MemPerc: `${memoryPercent(s.stats).toFixed(2)}%`,
    BlockIO: `${decimalBytes(s.stats.blkio.read)} / ${decimalBytes(s.stats.blkio.write)}`,
    PIDs: String(s.stats.pids.current),
    OOMKills: s.stats.memory.oomKills,
  };
}

export const stats: Command = {
  name: 'stats',
  usage: 'stats [OPTIONS] [CONTAINER...]',
  description: 'Display a live stream of container resource usage (from their cgroups)',
  flags: [
    { name: 'no-stream', type: 'boolean', description: 'Print one snapshot and exit' },
    {
      name: 'format',
      type: 'string',
      value: 'string',
      description: "'json' (JSON lines), 'table TEMPLATE' or a Go template ({{.Name}} {{.CPUPerc}} ...)",
    },
  ],
  async run(a, ctx) {
    const json = a.flags.format === 'json';
    const format = a.flags.format as string | undefined;
    if (format !== undefined && !json && !isTemplate(format))
      throw new UsageError(`unsupported format ${format}: json, a Go template or table TEMPLATE`);
    const print = (samples: StatsSample[]) => {
      const rows = samples.map(row);
      if (isTemplate(format)) {
        const withNames = rows.map((r) => ({ ...r, Container: r.Name, NetIO: '--' }));
        const out = renderRows(format, withNames, HEADERS.stats);
        if (out) console.log(out);
        return;
      }
      if (json) {
        for (const r of rows) console.log(JSON.stringify(r));
        return;
      }
      console.log(
        table(
          ['CONTAINER ID', 'NAME', 'CPU %', 'MEM USAGE / LIMIT', 'MEM %', 'BLOCK I/O', 'PIDS'],
          rows.map((r) => [r.ID, r.Name, r.CPUPerc, r.MemUsage, r.MemPerc, r.BlockIO, r.PIDs]),
        ),
      );
    };
    const once = a.flags['no-stream'] === true;
    // CPU % needs two samples: the engine takes one, waits, then gives the next against it.
    for await (const round of (await engine(ctx)).statsStream({ refs: a.positionals, once })) {
      if (!once && !json && process.stdout.isTTY) process.stdout.write('\x1b[2J\x1b[H');
      print(round);
    }
    return 0;
  },
};
