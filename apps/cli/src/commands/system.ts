import { formatBytes } from '@corral/engine';
import { type Command, checkArity, helpText, parseArgs, UsageError } from '../args.js';
import { bool, engine } from './common.js';
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

const subs: Record<string, Command> = { check, df, prune: systemPrune };

/** `corral system check [--repair]`: the data root's fsck. */
export const system: Command = {
  name: 'system',
  usage: 'system COMMAND (check, df, prune)',
  description: 'The data root: check (and repair), disk usage (df), prune',
  flags: [],
  stopAtPositional: true,
  args: { min: 1 },
  async run(a, ctx) {
    const [name, ...rest] = a.positionals;
    const sub = subs[name];
    if (!sub) {
      console.error(
        `corral system: unknown command ${name}\n${Object.values(subs)
          .map((c) => `  ${c.name.slice(7).padEnd(10)} ${c.description}`)
          .join('\n')}`,
      );
      return 1;
    }
    if (rest[0] === '--help') {
      console.log(helpText(sub));
      return 0;
    }
    const args = parseArgs(rest, sub.flags);
    checkArity(sub, args.positionals);
    if (sub === check && args.flags.format !== undefined && args.flags.format !== 'json')
      throw new UsageError(`unknown --format ${String(args.flags.format)}: json is the one there is`);
    return sub.run(args, ctx);
  },
};
