import { type Command, checkArity, type FlagSpec, helpText, type ParsedArgs, parseArgs } from '../args.js';
import { engine } from './common.js';

/**
 * `corral NAME SUB ...`: dispatches to `subs` (each a command named `NAME SUB`), with their
 * help and arity checked as top-level commands' are.
 */
export function commandGroup(name: string, description: string, subs: Record<string, Command>): Command {
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
      if (rest[0] === '--help') {
        console.log(helpText(sub));
        return 0;
      }
      const args = parseArgs(rest, sub.flags);
      checkArity(sub, args.positionals);
      return sub.run(args, ctx);
    },
  };
}

/** A subcommand of a group (`network ls`, `volume rm`): it gets the engine and its own args. */
export interface EngineSub {
  usage: string;
  description: string;
  flags: FlagSpec[];
  args: { min: number; max?: number };
  run(e: Awaited<ReturnType<typeof engine>>, a: ParsedArgs): Promise<number>;
}

/** A command group whose subcommands each need the engine. */
export function engineCommandGroup(
  name: string,
  description: string,
  subs: Record<string, EngineSub>,
): Command {
  const commands: Record<string, Command> = {};
  for (const [subName, sub] of Object.entries(subs)) {
    const command = `${name} ${subName}`;
    commands[subName] = {
      name: command,
      ...sub,
      // What remote mode names when corrald lacks the endpoint: `corral network ls`.
      run: async (a, ctx) => sub.run(await engine({ ...ctx, command: `corral ${command}` }), a),
    };
  }
  return commandGroup(name, description, commands);
}
