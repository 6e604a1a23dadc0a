import { type CgroupStats, cpuPercent, memoryPercent, memoryUsed } from '@corral/cgroups';
import { Engine, EngineError, shortId } from '@corral/engine';
import type { Command } from '../args.js';
import { table } from '../format.js';

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

interface Sample {
  id: string;
  name: string;
  prev: CgroupStats;
  cur: CgroupStats;
}

function row(s: Sample) {
  const cpu = cpuPercent(s.prev, s.cur);
  return {
    ID: shortId(s.id),
    Name: s.name,
    CPUPerc: `${cpu.toFixed(2)}%`,
    MemUsage: `${binaryBytes(memoryUsed(s.cur))} / ${binaryBytes(s.cur.memory.limit)}`,
    MemPerc: `${memoryPercent(s.cur).toFixed(2)}%`,
    BlockIO: `${decimalBytes(s.cur.blkio.read)} / ${decimalBytes(s.cur.blkio.write)}`,
    PIDs: String(s.cur.pids.current),
    OOMKills: s.cur.memory.oomKills,
  };
}

export const stats: Command = {
  name: 'stats',
  usage: 'stats [OPTIONS] [CONTAINER...]',
  description: 'Display a live stream of container resource usage (from their cgroups)',
  flags: [
    { name: 'no-stream', type: 'boolean', description: 'Print one snapshot and exit' },
    { name: 'format', type: 'string', value: 'json', description: 'Print JSON lines instead of a table' },
  ],
  async run(a, ctx) {
    const engine = new Engine({ root: ctx.root });
    const named = a.positionals.length > 0;
    const refs = () => (named ? a.positionals : engine.list().map((c) => c.id));
    const json = a.flags.format === 'json';
    if (a.flags.format !== undefined && !json)
      throw new EngineError(`unsupported format ${a.flags.format}: json`);
    const previous = new Map<string, CgroupStats>();
    const sample = (): Sample[] => {
      const out: Sample[] = [];
      for (const ref of refs()) {
        let got: ReturnType<Engine['stats']>;
        try {
          got = engine.stats(ref);
        } catch (e) {
          if (named) throw e; // a container asked for by name must exist and run
          continue; // it ended between the listing and the read
        }
        const prev = previous.get(got.record.id) ?? got.stats;
        previous.set(got.record.id, got.stats);
        out.push({ id: got.record.id, name: got.record.name, prev, cur: got.stats });
      }
      return out;
    };
    const print = (samples: Sample[]) => {
      const rows = samples.map(row);
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
    // CPU % needs two samples: take one, wait, then show the second against it.
    sample();
    await new Promise((r) => setTimeout(r, 500));
    if (a.flags['no-stream']) {
      print(sample());
      return 0;
    }
    for (;;) {
      const samples = sample();
      if (!json && process.stdout.isTTY) process.stdout.write('\x1b[2J\x1b[H');
      print(samples);
      if (named && samples.length === 0) return 0;
      await new Promise((r) => setTimeout(r, 1000));
    }
  },
};
