import { formatBytes } from '@corral/engine';
import { type Command, UsageError } from '../args.js';
import { bool, engine } from './common.js';
import { commandGroup } from './group.js';
import { df, systemPrune } from './prune.js';

const check: Command = {
  name: 'system check',
  usage: 'system check [--repair] [--format json]',
  description:
    'Check the data root: blobs against their digests, layers against their diff IDs, names against images, containers against their mounts, cgroups and processes. Exits 0 when nothing is left to fix, 1 otherwise',
  flags: [
    {
      name: 'repair',
      type: 'boolean',
      description:
        'Fix what can be fixed without losing data (damaged files and corrupt blobs are moved to quarantine/, not deleted); run it while no other corral command runs on this root',
    },
    { name: 'format', type: 'string', value: 'json', description: 'json: one object with every finding' },
  ],
  args: { min: 0, max: 0 },
  async run(a, ctx) {
    if (a.flags.format !== undefined && a.flags.format !== 'json')
      throw new UsageError(`unknown --format ${String(a.flags.format)}: json is the one there is`);
    const e = await engine(ctx);
    const result = await e.system.check({ repair: bool(a, 'repair') });
    if (a.flags.format === 'json') {
      console.log(JSON.stringify(result));
      return result.clean ? 0 : 1;
    }
    for (const f of result.findings)
      console.log(`${f.area}: ${f.problem}${f.repaired ? `\n  repaired: ${f.repaired}` : ''}`);
    const left = result.findings.filter((f) => !f.repaired).length;
    const r = result.reclaimable;
    if (r.blobs || r.layers)
      console.log(
        `${r.blobs} blob(s) and ${r.layers} layer(s) no image needs (${formatBytes(r.bytes)}): \`corral image prune\` frees them`,
      );
    if (!result.findings.length) console.log('no problems found');
    else if (left)
      console.log(
        `${left} problem(s) left${bool(a, 'repair') ? '' : ': `corral system check --repair` fixes what it can'}`,
      );
    else console.log(`${result.findings.length} problem(s) found and repaired`);
    return result.clean ? 0 : 1;
  },
};

/** `corral system check|df|prune`: the data root's fsck, disk usage and prune. */
export const system = commandGroup('system', 'The data root: check (and repair), disk usage (df), prune', {
  check,
  df,
  prune: systemPrune,
});
