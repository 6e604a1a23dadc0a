// corral-runtime: an OCI runtime with runc's command line, for podman, containerd and anything
// else that drives runc. This module loads little: each command's module is imported when it
// runs, so `state` (which consumers call often) never loads what `create` needs.
import { parseGlobals, UsageError } from './args.js';
import { configureLog, fatal } from './log.js';
import { writeOut } from './out.js';
import { VERSION } from './version.js';

export type Command = (globals: import('./args.js').Globals, argv: string[]) => Promise<number | undefined>;

/** Each command and the module that has it. */
const COMMANDS: Record<string, () => Promise<Command>> = {
  create: async () => (await import('./create.js')).create,
  run: async () => (await import('./create.js')).run,
  start: async () => (await import('./lifecycle.js')).start,
  state: async () => (await import('./state.js')).state,
  list: async () => (await import('./state.js')).list,
  kill: async () => (await import('./lifecycle.js')).kill,
  delete: async () => (await import('./lifecycle.js')).remove,
  pause: async () => (await import('./lifecycle.js')).pause,
  resume: async () => (await import('./lifecycle.js')).resume,
  exec: async () => (await import('./exec.js')).exec,
  ps: async () => (await import('./inspect.js')).ps,
  events: async () => (await import('./inspect.js')).events,
  update: async () => (await import('./inspect.js')).update,
  features: async () => (await import('./info.js')).features,
  spec: async () => (await import('./info.js')).spec,
};

/** Commands whose failures exit 255 rather than 1 (as runc's exec does). */
const EXIT_255 = new Set(['exec']);

const USAGE = `corral-runtime: an OCI runtime with runc's command line

Usage: corral-runtime [global options] command [command options] [arguments...]

Commands:
  create    create a container (its init waits for start)
  start     run the program of a created container
  run       create and start a container (-d: and leave it)
  state     the state of a container, as JSON
  list      the containers under --root
  kill      send a signal to a container's init (--all: to every process)
  delete    remove a stopped container (--force: any)
  exec      run another process in a running container
  ps        the processes of a container
  pause     freeze every process of a container
  resume    thaw a paused container
  events    stats and OOM events of a container (--stats: one sample)
  update    change a container's limits
  features  what this runtime supports, as JSON
  spec      write a sample config.json

Global options:
  --root DIR                 state folder (default /run/corral-runtime)
  --log FILE                 log file (default stderr)
  --log-format text|json     log format (default text)
  --debug                    debug logging
  --systemd-cgroup           refused: corral-runtime manages cgroupfs paths only
  --version, -v              print the version
`;

async function main(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parseGlobals>;
  try {
    parsed = parseGlobals(argv);
  } catch (e) {
    return fatal((e as Error).message);
  }
  const { globals, command, rest } = parsed;
  configureLog(globals);
  if (globals.version) {
    const { OCI_VERSION } = await import('../state.js');
    writeOut(`corral-runtime version ${VERSION}\nspec: ${OCI_VERSION}\nnode: ${process.version}\n`);
    return 0;
  }
  if (!command || command === 'help' || globals.help) {
    writeOut(USAGE);
    return command || globals.help ? 0 : 1;
  }
  const load = COMMANDS[command];
  if (!load) return fatal(`No help topic for '${command}'`, 3);
  if (globals.systemdCgroup)
    return fatal(
      'the systemd cgroup manager is not supported by corral-runtime: run it with the cgroupfs manager (no --systemd-cgroup; SystemdCgroup = false in containerd)',
    );
  if (globals.rootless === 'true')
    return fatal('rootless mode is not supported: corral-runtime runs as root');
  if (command === 'create' || command === 'run') (await import('./early.js')).startEarly(command, rest);
  const run = await load();
  try {
    return (await run(globals, rest)) ?? 0;
  } catch (e) {
    if (e instanceof UsageError) return fatal(e.message);
    return fatal((e as Error).message, EXIT_255.has(command) ? 255 : 1);
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e) => fatal(String((e as Error)?.stack ?? e)),
);
