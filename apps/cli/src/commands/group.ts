import { type Command, checkArity, type FlagSpec, helpText, type ParsedArgs, parseArgs } from '../args.js';
import { engine } from './common.js';

/** A subcommand of a group (`network ls`, `volume rm`): it gets the engine and its own args. */
export interface EngineSub {
  usage: string;
  description: string;
  flags: FlagSpec[];
  args: { min: number; max?: number };
  run(e: Awaited<ReturnType<typeof engine>>, a: ParsedArgs): Promise<number>;
}

/** `corral NAME SUB ...`: dispatches to `subs`, with their help and arity checked as commands'. */
export function engineCommandGroup(
  name: string,
  description: string,
  subs: Record<string, EngineSub>,
): Command {
  return {
    name,
    usage: `${name} COMMAND (${Object.keys(subs).join('|')})`,
    description,
    flags: [],
    stopAtPositional: true,
    args: { min: 1 },
    async run(a, ctx) {
      const [subName, ...rest] = a.positionals;
      const sub = subs[subName];
      if (!sub) {
        console.error(
          `corral ${name}: unknown command ${subName}\n${Object.entries(subs)
            .map(([n, s]) => `  ${n.padEnd(11)}${s.description}`)
            .join('\n')}`,
        );
        return 1;
      }
      const cmd: Command = { name: `${name} ${subName}`, ...sub, run: async () => 0 };
      if (rest[0] === '--help') {
        console.log(helpText(cmd));
        return 0;
      }
      const args = parseArgs(rest, sub.flags);
      checkArity(cmd, args.positionals);
      // What remote mode names when corrald lacks the endpoint: `corral network ls`.
      return sub.run(await engine({ ...ctx, command: `corral ${name} ${subName}` }), args);
    },
  };
}
