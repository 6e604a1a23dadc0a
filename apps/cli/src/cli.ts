// The CLI's dispatch: global flags, the command's flags and arity, its run, and how its
// errors become exit codes. main.ts runs it with every command; the build also makes a bundle
// per quick command (entry-*.ts: ps, images, version), which the bin picks by the command's
// name, so that such a command neither reads nor evaluates the modules of the others.
import { CorralError } from '@corral/engine';
import { type Command, type Context, checkArity, helpText, parseArgs, UsageError } from './args.js';
import { RemoteUnsupported } from './backend.js';
import { versionLine } from './commands/about.js';
import { errorText } from './errors.js';
import { flushStdio, watchStdio } from './print.js';

let commands = new Map<string, Command>();

function usage(): string {
  const lines = [
    'Usage:  corral [--root DIR | --host unix:///PATH] [--iptables[=BOOL]] [--ip-forward[=BOOL]] [--ip-masq[=BOOL]] COMMAND\n        corral --version',
    '',
    "--iptables, --ip-forward and --ip-masq are dockerd's network switches (defaults true, false,",
    'false); the data root keeps them for the commands and containers after this one.',
    '',
    'A container engine for real Linux containers.',
    '',
    'Commands:',
  ];
  for (const c of commands.values()) lines.push(`  ${c.name.padEnd(10)} ${c.description}`);
  lines.push('', "Run 'corral COMMAND --help' for more information on a command.");
  return lines.join('\n');
}

/** dockerd's network switches, as corral's global flags (`--ip-masq`, `--iptables=false`). */
const SWITCHES = { '--iptables': 'iptables', '--ip-forward': 'ipForward', '--ip-masq': 'ipMasq' } as const;
const isSwitch = (a: string | undefined) => !!a && Object.hasOwn(SWITCHES, a.split('=')[0]);

/** Sets a switch from `--flag[=true|false]`; returns what is wrong with it, if anything. */
function setSwitch(ctx: Context, a: string): string | undefined {
  const [flag, value = 'true'] = a.split(/=(.*)/s);
  if (value !== 'true' && value !== 'false') return `invalid value "${value}" for ${flag}: true or false`;
  ctx.network = { ...ctx.network, [SWITCHES[flag as keyof typeof SWITCHES]]: value === 'true' };
}

async function main(argv: string[]): Promise<number> {
  const ctx: Context = { root: undefined };
  // --root DIR (this process's engine) or --host / -H unix:///PATH (corrald's: remote mode).
  let host: string | undefined;
  while (
    argv[0]?.startsWith('--root') ||
    argv[0]?.startsWith('--host') ||
    argv[0] === '-H' ||
    isSwitch(argv[0])
  ) {
    if (isSwitch(argv[0])) {
      const bad = setSwitch(ctx, argv.shift()!);
      if (bad) {
        console.error(`corral: ${bad}`);
        return 125;
      }
      continue;
    }
    const a = argv.shift()!;
    const value = a.includes('=') ? a.slice(a.indexOf('=') + 1) : argv.shift();
    if (a.startsWith('--root')) {
      if (!value) throw new UsageError('--root needs a folder');
      ctx.root = value;
    } else {
      if (!value) throw new UsageError('--host needs an address: unix:///PATH');
      host = value;
    }
  }
  if (host && ctx.network) {
    console.error("corral: --iptables, --ip-forward and --ip-masq with --host: they are corrald's flags");
    return 125;
  }
  if (host && ctx.root) {
    // Neither is picked for the user: one names this machine's data root, the other corrald's.
    console.error(
      "corral: --root and --host together: with --host the data root is corrald's (its --data-root)",
    );
    return 125;
  }
  // CORRAL_HOST as --host, unless the command line names a data root of its own.
  ctx.host = host ?? (ctx.root === undefined ? process.env.CORRAL_HOST || undefined : undefined);
  const name = argv.shift();
  ctx.command = `corral ${name}`;
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
    if (e instanceof RemoteUnsupported) {
      console.error(`corral: ${e.message}`);
      return 125;
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

/**
 * Runs the command line of this process with `list` as the commands; `done` runs once the
 * command is over (before the process exits).
 */
export function runCli(list: readonly Command[], done: () => void = () => {}): void {
  commands = new Map(list.map((c) => [c.name, c]));
  watchStdio();
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
    .finally(done)
    // Nothing a failed command left open (a keeper's socket, a timer) may keep the CLI waiting
    // once its answer is out.
    .then(() => flushStdio(() => process.exit()));
}
