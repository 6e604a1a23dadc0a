// container prune, system df, system prune: what the engine's housekeeping reports, printed
// as docker prints it. Like `image prune`, corral never prompts (-f is taken and changes nothing).
import { formatBytes } from '@corral/engine';
import type { Command } from '../args.js';
import { table } from '../format.js';
import { isTemplate, renderRows } from '../templated.js';
import { bool, engine, list, str } from './common.js';
import { commandGroup } from './group.js';
import { filterFlags } from './ps.js';

const force = {
  name: 'force',
  short: 'f',
  type: 'boolean',
  description: 'Do not prompt for confirmation (corral never prompts)',
} as const;

/** Docker's `Deleted X:` sections, then the total. */
function printPruned(sections: [string, string[]][], bytes: number): void {
  for (const [title, ids] of sections) if (ids.length) console.log(`${title}:\n${ids.join('\n')}\n`);
  console.log(`Total reclaimed space: ${formatBytes(bytes)}`);
}

export const containerPrune: Command = {
  name: 'container prune',
  usage: 'container prune [OPTIONS]',
  description: 'Remove all stopped containers',
  flags: [
    force,
    {
      name: 'filter',
      type: 'list',
      value: 'filter',
      description: 'Provide filter values (until=10m, label=K[=V], label!=K)',
    },
  ],
  args: { min: 0, max: 0 },
  async run(a, ctx) {
    const r = await (await engine(ctx)).pruneContainers(filterFlags(list(a, 'filter')));
    printPruned([['Deleted Containers', r.deleted]], r.spaceReclaimed);
    return 0;
  },
};

/** `corral container prune`: Docker's management command (its other verbs are the top-level ones). */
export const container = commandGroup('container', 'Manage containers (container prune)', {
  prune: containerPrune,
});

const pct = (part: number, whole: number) => (whole ? Math.round((part / whole) * 100) : 0);

export const df: Command = {
  name: 'system df',
  usage: 'system df [OPTIONS]',
  description: 'Show disk usage: images, containers, local volumes',
  flags: [
    {
      name: 'format',
      type: 'string',
      value: 'string',
      description: "'json' (JSON lines) or a Go template ({{.Type}} {{.Size}} ...)",
    },
  ],
  args: { min: 0, max: 0 },
  async run(a, ctx) {
    const u = await (await engine(ctx)).diskUsage();
    const activeImages = u.images.filter((i) => i.containers > 0);
    const imageBytes = u.images.reduce((n, i) => n + i.size, 0);
    const idleImageBytes = u.images.filter((i) => !i.containers).reduce((n, i) => n + i.size, 0);
    const running = u.containers.filter((c) => c.state === 'running' || c.state === 'paused');
    const ctrBytes = u.containers.reduce((n, c) => n + c.sizeRw, 0);
    const idleCtrBytes = u.containers.filter((c) => !running.includes(c)).reduce((n, c) => n + c.sizeRw, 0);
    const usedVolumes = u.volumes.filter((v) => v.refCount > 0);
    const volBytes = u.volumes.reduce((n, v) => n + v.size, 0);
    const idleVolBytes = u.volumes.filter((v) => !v.refCount).reduce((n, v) => n + v.size, 0);
    const row = (Type: string, total: number, active: number, size: number, free: number) => ({
      Type,
      TotalCount: String(total),
      Active: String(active),
      Size: formatBytes(size),
      Reclaimable: `${formatBytes(free)} (${pct(free, size)}%)`,
    });
    const rows = [
      row('Images', u.images.length, activeImages.length, imageBytes, idleImageBytes),
      row('Containers', u.containers.length, running.length, ctrBytes, idleCtrBytes),
      row('Local Volumes', u.volumes.length, usedVolumes.length, volBytes, idleVolBytes),
      { Type: 'Build Cache', TotalCount: '0', Active: '0', Size: '0B', Reclaimable: '0B' },
    ];
    const format = str(a, 'format');
    if (format === 'json') for (const r of rows) console.log(JSON.stringify(r));
    else if (isTemplate(format)) console.log(renderRows(format, rows));
    else
      console.log(
        table(
          ['TYPE', 'TOTAL', 'ACTIVE', 'SIZE', 'RECLAIMABLE'],
          rows.map((r) => [r.Type, r.TotalCount, r.Active, r.Size, r.Reclaimable]),
        ),
      );
    return 0;
  },
};

export const systemPrune: Command = {
  name: 'system prune',
  usage: 'system prune [OPTIONS]',
  description:
    'Remove stopped containers, networks no container uses, dangling images (-a: every unused image) and, with --volumes, unused anonymous volumes',
  flags: [
    {
      name: 'all',
      short: 'a',
      type: 'boolean',
      description: 'Remove all unused images not just dangling ones',
    },
    force,
    { name: 'volumes', type: 'boolean', description: 'Prune anonymous volumes' },
  ],
  args: { min: 0, max: 0 },
  async run(a, ctx) {
    const r = await (await engine(ctx)).systemPrune({ all: bool(a, 'all'), volumes: bool(a, 'volumes') });
    printPruned(
      [
        ['Deleted Containers', r.containers],
        ['Deleted Networks', r.networks],
        ['Deleted Volumes', r.volumes],
        ['Deleted Images', r.images.map((i) => `deleted: ${i}`)],
      ],
      r.spaceReclaimed,
    );
    return 0;
  },
};
