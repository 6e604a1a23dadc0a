// runc's command line as its consumers call it (urfave/cli v1): `-flag` or `--flag`, a value
// as the next argument or after `=`, repeatable flags, and flags after the positional
// arguments moved before them unless the command keeps its arguments as they are (exec).

export type FlagType = 'bool' | 'string' | 'int' | 'list';

export interface FlagSpec {
  type: FlagType;
  /** Other names: `b` for `--bundle`. */
  alias?: string[];
}

export type FlagSpecs = Record<string, FlagSpec>;

export type FlagValues = Record<string, boolean | string | number | string[] | undefined>;

/** Bad usage: runc exits 1 and names the flag. */
export class UsageError extends Error {}

function lookup(specs: FlagSpecs, name: string): [string, FlagSpec] | undefined {
  if (specs[name]) return [name, specs[name]];
  for (const [key, spec] of Object.entries(specs)) if (spec.alias?.includes(name)) return [key, spec];
  return undefined;
}

/**
 * Parses `argv` against `specs`. With `inOrder` flags end at the first positional argument
 * (everything after it is positional); otherwise flags may follow positional arguments, up
 * to `--`.
 */
export function parseFlags(
  argv: readonly string[],
  specs: FlagSpecs,
  inOrder = false,
): { flags: FlagValues; args: string[] } {
  const flags: FlagValues = {};
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') {
      args.push(...argv.slice(i + 1));
      break;
    }
    if (!a.startsWith('-') || a === '-') {
      if (inOrder) {
        args.push(...argv.slice(i));
        break;
      }
      args.push(a);
      continue;
    }
    const body = a.replace(/^--?/, '');
    const eq = body.indexOf('=');
    const name = eq >= 0 ? body.slice(0, eq) : body;
    const found = lookup(specs, name);
    if (!found) throw new UsageError(`flag provided but not defined: -${name}`);
    const [key, spec] = found;
    if (spec.type === 'bool') {
      const v = eq >= 0 ? body.slice(eq + 1) : 'true';
      if (!['true', 'false', '1', '0'].includes(v))
        throw new UsageError(`invalid boolean value "${v}" for -${name}`);
      flags[key] = v === 'true' || v === '1';
      continue;
    }
    let value: string;
    if (eq >= 0) value = body.slice(eq + 1);
    else {
      if (i + 1 >= argv.length) throw new UsageError(`flag needs an argument: -${name}`);
      value = argv[++i];
    }
    if (spec.type === 'int') {
      if (!/^-?\d+$/.test(value))
        throw new UsageError(`invalid value "${value}" for flag -${name}: not an integer`);
      flags[key] = Number(value);
    } else if (spec.type === 'list') {
      flags[key] = [...((flags[key] as string[] | undefined) ?? []), value];
    } else {
      flags[key] = value;
    }
  }
  return { flags, args };
}

/** The global flags, before the command. */
export const GLOBAL_FLAGS: FlagSpecs = {
  root: { type: 'string' },
  log: { type: 'string' },
  'log-format': { type: 'string' },
  debug: { type: 'bool' },
  'systemd-cgroup': { type: 'bool' },
  criu: { type: 'string' },
  rootless: { type: 'string' },
  version: { type: 'bool', alias: ['v'] },
  help: { type: 'bool', alias: ['h'] },
};

export interface Globals {
  root: string;
  log?: string;
  logFormat: 'text' | 'json';
  debug: boolean;
  systemdCgroup: boolean;
  rootless?: string;
  version: boolean;
  help: boolean;
}

export const DEFAULT_ROOT = '/run/corral-runtime';

/** Splits argv into the global flags, the command and its arguments. */
export function parseGlobals(argv: readonly string[]): {
  globals: Globals;
  command?: string;
  rest: string[];
} {
  const { flags, args } = parseFlags(argv, GLOBAL_FLAGS, true);
  const format = (flags['log-format'] as string | undefined) ?? 'text';
  if (format !== 'text' && format !== 'json')
    throw new UsageError(`invalid log-format: ${format} (use text or json)`);
  return {
    globals: {
      root: (flags.root as string | undefined) ?? DEFAULT_ROOT,
      log: flags.log as string | undefined,
      logFormat: format,
      debug: flags.debug === true,
      systemdCgroup: flags['systemd-cgroup'] === true,
      rootless: flags.rootless as string | undefined,
      version: flags.version === true,
      help: flags.help === true,
    },
    command: args[0],
    rest: args.slice(1),
  };
}
