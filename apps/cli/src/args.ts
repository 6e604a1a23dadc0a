import type { ErrorKind } from '@corral/engine';

/** A flag of a command: `--name VALUE`, `-n VALUE`, `--rm` (boolean), `-e A -e B` (list). */
export interface FlagSpec {
  name: string;
  short?: string;
  type: 'boolean' | 'string' | 'list';
  description: string;
  /** Shown in help for string flags. */
  value?: string;
}

export interface ParsedArgs {
  flags: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
}

/** A usage error: the CLI prints it with the command's help hint and exits with 125 or 1. */
export class UsageError extends Error {}

/**
 * Parses docker-style arguments. With `stopAtPositional` (run, exec) everything from the first
 * positional on belongs to the container's command, flags included.
 */
export function parseArgs(
  argv: readonly string[],
  specs: readonly FlagSpec[],
  stopAtPositional = false,
): ParsedArgs {
  const byLong = new Map(specs.map((s) => [s.name, s]));
  const byShort = new Map(specs.filter((s) => s.short).map((s) => [s.short!, s]));
  const flags: ParsedArgs['flags'] = {};
  const positionals: string[] = [];
  const set = (spec: FlagSpec, value: string | boolean) => {
    if (spec.type === 'list') flags[spec.name] = [...((flags[spec.name] as string[]) ?? []), String(value)];
    else flags[spec.name] = value;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (a.startsWith('--') && a.length > 2) {
      const eq = a.indexOf('=');
      const key = eq > 0 ? a.slice(2, eq) : a.slice(2);
      const spec = byLong.get(key);
      if (!spec) throw new UsageError(`unknown flag: --${key}`);
      if (spec.type === 'boolean') {
        const v = eq > 0 ? a.slice(eq + 1) : 'true';
        if (v !== 'true' && v !== 'false')
          throw new UsageError(`invalid value ${v} for --${key}: true or false`);
        set(spec, v === 'true');
      } else {
        const v = eq > 0 ? a.slice(eq + 1) : argv[++i];
        if (v === undefined) throw new UsageError(`flag needs an argument: --${key}`);
        set(spec, v);
      }
      continue;
    }
    if (a.startsWith('-') && a.length > 1) {
      // Grouped short flags: -dit, or -e VALUE / -eVALUE.
      for (let j = 1; j < a.length; j++) {
        const spec = byShort.get(a[j]);
        if (!spec) throw new UsageError(`unknown shorthand flag: '${a[j]}' in ${a}`);
        if (spec.type === 'boolean') {
          set(spec, true);
          continue;
        }
        const rest = a.slice(j + 1);
        const v = rest || argv[++i];
        if (v === undefined) throw new UsageError(`flag needs an argument: '${a[j]}' in ${a}`);
        set(spec, v);
        break;
      }
      continue;
    }
    positionals.push(a);
    if (stopAtPositional) {
      positionals.push(...argv.slice(i + 1));
      break;
    }
  }
  return { flags, positionals };
}

/** A command of the CLI: its flags, usage line, and what it does. */
export interface Command {
  name: string;
  usage: string;
  description: string;
  flags: FlagSpec[];
  stopAtPositional?: boolean;
  /** How many positional arguments it takes (checked before it runs; max absent: no limit). */
  args?: { min: number; max?: number };
  /**
   * The exit code of a failure (Docker's: 125 for run and create, 1 otherwise), and per error
   * kind where a command differs; 126/127 (the program's own) always pass through.
   */
  failureCode?: number;
  exitCodes?: Partial<Record<ErrorKind, number>>;
  /** Returns the exit code. */
  run(args: ParsedArgs, ctx: Context): Promise<number>;
}

export interface Context {
  root: string | undefined;
  /** `--host` / CORRAL_HOST: corrald's socket (`unix:///PATH`); every command then goes through it. */
  host?: string;
  /** The command as typed (`corral logs`), for errors of what remote mode cannot do. */
  command?: string;
  /** dockerd's network switches given on the command line (kept by the data root). */
  network?: { iptables?: boolean; ipForward?: boolean; ipMasq?: boolean };
}

export function helpText(c: Command): string {
  const lines = [`Usage:  corral ${c.usage}`, '', c.description];
  if (c.flags.length) {
    lines.push('', 'Options:');
    for (const f of c.flags) {
      const left = `${f.short ? `-${f.short}, ` : '    '}--${f.name}${f.type !== 'boolean' ? ` ${f.value ?? (f.type === 'list' ? 'list' : 'string')}` : ''}`;
      lines.push(`  ${left.padEnd(30)} ${f.description}`);
    }
  }
  return lines.join('\n');
}

/** Checks the number of positional arguments against the command's arity. */
export function checkArity(c: Command, positionals: readonly string[]): void {
  if (!c.args) return;
  const { min, max } = c.args;
  const n = positionals.length;
  const plural = (k: number) => `${k} argument${k === 1 ? '' : 's'}`;
  if (max === min && n !== min) throw new UsageError(`"${c.name}" requires exactly ${plural(min)}`);
  if (n < min) throw new UsageError(`"${c.name}" requires at least ${plural(min)}`);
  if (max !== undefined && n > max) throw new UsageError(`"${c.name}" requires at most ${plural(max)}`);
}
