// First: spawns a run's keeper ahead (see early.ts; done already when the bundle's early entry
// ran); order matters.
import './early.js';
import { CorralError } from '@corral/engine';
import { type Command, type Context, checkArity, helpText, parseArgs, UsageError } from './args.js';
import { aboutCommands, versionLine } from './commands/about.js';
import { containerCommands } from './commands/containers.js';
import { cp } from './commands/cp.js';
import { events } from './commands/events.js';
import { imageCommands } from './commands/images.js';
import { networkCommands } from './commands/network.js';
import { container } from './commands/prune.js';
import { stats } from './commands/stats.js';
import { system } from './commands/system.js';
import { volumeCommands } from './commands/volume.js';
import { errorText } from './errors.js';
import { releaseParkedInit } from './parked.js';

const commands = new Map<string, Command>(
  [
    ...containerCommands,
    cp,
    container,
    stats,
    events,
    ...imageCommands,
    ...networkCommands,
    system,
    ...volumeCommands,
    ...aboutCommands,
  ].map((c) => [c.name, c]),
);

function usage(): string {
  const lines = [
    'Usage:  corral [--root DIR] COMMAND\n        corral --version',
    '',
    'A container engine for real Linux containers.',
    '',
    'Commands:',
  ];
  for (const c of commands.values()) lines.push(`  ${c.name.padEnd(10)} ${c.description}`);
  lines.push('', "Run 'corral COMMAND --help' for more information on a command.");
  return lines.join('\n');
}

async function main(argv: string[]): Promise<number> {
  const ctx: Context = { root: undefined };
  while (argv[0]?.startsWith('--root')) {
    const a = argv.shift()!;
    ctx.root = a.includes('=') ? a.slice(a.indexOf('=') + 1) : argv.shift();
    if (!ctx.root) throw new UsageError('--root needs a folder');
  }
  const name = argv.shift();
  if (name === '--version' || name === '-v') {
    console.log(versionLine());
    return 0;
  }
  if (!name || name === '--help' || name === 'help') {
    console.log(usage());
    return name ? 0 : 1;
  }
  const command = commands.get(name);
  if (!command) {
    console.error(`corral: '${name}' is not a corral command.\nSee 'corral --help'`);
    return 1;
  }
  if (argv[0] === '--help') {
    console.log(helpText(command));
    return 0;
  }
  let args: ReturnType<typeof parseArgs>;
  try {
    args = parseArgs(argv, command.flags, command.stopAtPositional);
    checkArity(command, args.positionals);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    console.error(`corral ${name}: ${e.message}\nSee 'corral ${name} --help'.`);
    return command.failureCode ?? 1;
  }
  try {
    return await command.run(args, ctx);
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`corral ${name}: ${e.message}\nSee 'corral ${name} --help'.`);
      return command.failureCode ?? 1;
    }
    if (e instanceof CorralError) {
      console.error(`corral: ${errorText(e)}`);
      return exitCodeOf(e, command);
    }
    throw e;
  }
}

/**
 * Docker's exit code for an engine error: the program's own 126/127, 125 for a failure before
 * it ran (and for anything in run and create), 1 otherwise, unless the command says otherwise.
 */
function exitCodeOf(e: CorralError, command: Command): number {
  if (e.kind === 'NotExecutable') return 126;
  if (e.kind === 'CommandNotFound') return 127;
  return command.exitCodes?.[e.kind] ?? (e.kind === 'CannotStart' ? 125 : (command.failureCode ?? 1));
}

main(process.argv.slice(2))
  .then(
    (code) => {
      process.exitCode = code;
    },
    (e: Error) => {
      console.error(`corral: ${e.stack ?? e.message}`);
      process.exitCode = 125;
    },
  )
  // An init started ahead for a run that failed first would keep this process waiting.
  .finally(() => releaseParkedInit());
