// `exec`: another process in a running container, from a process.json (--process, as podman's
// conmon and containerd's shim pass it) or from arguments and flags over the container's own
// process. -d leaves the program to the caller's subreaper; otherwise corral-runtime waits
// for it, passes signals on and exits with its status.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Runtime } from '../runtime.js';
import type { OciProcess, OciSpec } from '../spec.js';
import { readState } from '../state.js';
import { type FlagSpecs, type Globals, parseFlags, UsageError } from './args.js';
import { sendTerminal, writePidFile } from './create.js';

const EXEC_FLAGS = {
  'console-socket': { type: 'string' },
  cwd: { type: 'string' },
  env: { type: 'list', alias: ['e'] },
  tty: { type: 'bool', alias: ['t'] },
  user: { type: 'string', alias: ['u'] },
  'additional-gids': { type: 'list', alias: ['g'] },
  process: { type: 'string', alias: ['p'] },
  detach: { type: 'bool', alias: ['d'] },
  'pid-file': { type: 'string' },
  'process-label': { type: 'string' },
  apparmor: { type: 'string' },
  'no-new-privs': { type: 'bool' },
  cap: { type: 'list', alias: ['c'] },
  'preserve-fds': { type: 'int' },
  cgroup: { type: 'list' },
  'ignore-paused': { type: 'bool' },
} satisfies FlagSpecs;

const CAP_SETS = ['bounding', 'effective', 'inheritable', 'permitted', 'ambient'] as const;

function parseUser(user: string): { uid: number; gid: number } {
  const m = /^(\d+)(?::(\d+))?$/.exec(user);
  if (!m)
    throw new UsageError(
      `invalid --user ${user}: use UID[:GID] (numbers: names need the container's /etc/passwd)`,
    );
  return { uid: Number(m[1]), gid: Number(m[2] ?? 0) };
}

/** The process to run: a process.json, or the arguments over the container's own process. */
function processOf(flags: Record<string, unknown>, command: string[], bundle: string): OciProcess {
  for (const f of ['process-label', 'apparmor'] as const)
    if (flags[f])
      throw new UsageError(`--${f} is not supported: corral-runtime has no SELinux or AppArmor support`);
  if (flags.cgroup) throw new UsageError('--cgroup is not supported: the process joins the container cgroup');
  if (flags.process) {
    try {
      return JSON.parse(readFileSync(flags.process as string, 'utf8')) as OciProcess;
    } catch (e) {
      throw new Error(`reading the process ${flags.process}: ${(e as Error).message}`);
    }
  }
  if (command.length === 0) throw new UsageError('exec args cannot be empty');
  const spec = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8')) as OciSpec;
  const p: OciProcess = { ...spec.process, args: command, terminal: flags.tty === true };
  if (flags.cwd) p.cwd = flags.cwd as string;
  if (flags.env) p.env = [...(p.env ?? []), ...(flags.env as string[])];
  if (flags.user)
    p.user = { ...p.user, ...parseUser(flags.user as string), additionalGids: p.user.additionalGids };
  if (flags['additional-gids']) {
    const gids = (flags['additional-gids'] as string[]).map(Number);
    if (gids.some((g) => !Number.isInteger(g) || g < 0)) throw new UsageError('invalid --additional-gids');
    p.user = { ...p.user, additionalGids: gids };
  }
  if (flags.cap) {
    const caps = { ...(p.capabilities ?? {}) };
    for (const set of CAP_SETS) caps[set] = [...new Set([...(caps[set] ?? []), ...(flags.cap as string[])])];
    p.capabilities = caps;
  }
  if (flags['no-new-privs']) p.noNewPrivileges = true;
  return p;
}

export async function exec(g: Globals, argv: string[]): Promise<number> {
  const { flags, args } = parseFlags(argv, EXEC_FLAGS, true);
  if (args.length < 1) throw new UsageError('corral-runtime: "exec" requires a minimum of 1 argument');
  const [id, ...command] = args;
  const st = readState(g.root, id);
  const proc = processOf(flags, command, st.bundle);
  const detach = flags.detach === true;
  const socket = flags['console-socket'] as string | undefined;
  if (proc.terminal && detach && !socket)
    throw new UsageError('cannot allocate tty if corral-runtime will detach without setting console socket');
  if (!proc.terminal && socket)
    throw new UsageError('cannot use console socket if corral-runtime will not detach or allocate tty');
  const rt = new Runtime({ root: g.root });
  const c = await rt.exec(id, proc, {
    stdio: 'inherit',
    detach,
    preserveFds: (flags['preserve-fds'] as number | undefined) ?? 0,
  });
  if (c.terminal !== null && socket) {
    await sendTerminal(socket, c.terminal);
    c.terminal = null;
  }
  if (flags['pid-file']) writePidFile(flags['pid-file'] as string, c.pid);
  if (detach) {
    // The helper leaves at once; the program goes to our caller's subreaper.
    await c.wait();
    return 0;
  }
  let relay: { done: Promise<void>; resize(): void } | null = null;
  if (c.terminal !== null) relay = (await import('./terminal.js')).relayTerminal(c.terminal);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH'] as const) {
    process.on(sig, () => {
      if (sig === 'SIGWINCH') relay?.resize();
      else c.process.kill(sig);
    });
  }
  const code = await c.wait();
  await relay?.done;
  return code;
}
