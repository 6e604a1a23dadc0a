// `create` and `run`. The container's init is started first, before the rest of the runtime
// loads, so that its Node start-up overlaps ours. create exits once the init is parked before
// the program: the init lives on, reparented to the caller's subreaper (conmon, a shim).
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { Pid1Process } from '@corral/pidns';
import { fastRunRefusal } from '../fast-path.js';
import { spawnInit } from '../init-process.js';
import type { OciSpec } from '../spec.js';
import { type FlagSpecs, type Globals, parseFlags, UsageError } from './args.js';
import { CREATE_FLAGS, RUN_FLAGS, takeEarlyInit } from './create-flags.js';
import { log } from './log.js';
import { exactArgs } from './state.js';

/** Writes the pid file as runc does: a temporary file in the same folder, then a rename. */
export function writePidFile(path: string, pid: number): void {
  const abs = resolve(path);
  const tmp = join(dirname(abs), `.${basename(abs)}`);
  writeFileSync(tmp, String(pid));
  renameSync(tmp, abs);
}

/** The terminal's master goes to whoever listens on the console socket (SCM_RIGHTS). */
export async function sendTerminal(socket: string, master: number): Promise<void> {
  const { close, sendFdTo } = await import('@corral/sys');
  try {
    sendFdTo(socket, master, '/dev/ptmx');
  } finally {
    close(master);
  }
}

interface Parsed {
  id: string;
  bundle: string;
  spec: OciSpec;
  flags: Record<string, unknown>;
}

function parse(command: string, argv: string[], specs: FlagSpecs): Parsed {
  const { flags, args } = parseFlags(argv, specs);
  const [id] = exactArgs(command, args);
  const bundle = resolve((flags.bundle as string | undefined) ?? '.');
  let spec: OciSpec;
  try {
    spec = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8'));
  } catch (e) {
    throw new Error(
      `JSON specification file config.json not found or unreadable in ${bundle}: ${(e as Error).message}`,
    );
  }
  const preserve = flags['preserve-fds'];
  if (preserve !== undefined && (preserve as number) < 0)
    throw new UsageError('--preserve-fds must not be negative');
  return { id, bundle, spec, flags };
}

async function createContainer(g: Globals, command: string, p: Parsed, detach: boolean) {
  const { id, bundle, spec, flags } = p;
  const terminal = spec?.process?.terminal === true;
  const socket = flags['console-socket'] as string | undefined;
  if (terminal && detach && !socket)
    throw new UsageError('cannot allocate tty if corral-runtime will detach without setting console socket');
  if (!terminal && socket)
    throw new UsageError('cannot use console socket if corral-runtime will not detach or allocate tty');
  const preserveFds = (flags['preserve-fds'] as number | undefined) ?? 0;
  const pidNamespace = spec?.linux?.namespaces?.find((n) => n.type === 'pid')?.path || undefined;
  // Started ahead by early.ts (or now), so that its Node start-up overlaps loading the runtime.
  let init: Pid1Process | undefined;
  const early = takeEarlyInit();
  if (early && early.preserveFds === preserveFds && early.pidNamespace === pidNamespace && !terminal)
    init = early.init;
  else early?.init.kill('SIGKILL');
  if (!terminal && !init) init = spawnInit({ stdio: 'inherit', preserveFds, pidNamespace });
  try {
    const { Runtime } = await import('../runtime.js');
    const rt = new Runtime({ root: g.root });
    log('debug', `${command} ${id} from ${bundle}`);
    const c = await rt.create(id, bundle, {
      init,
      preserveFds,
      defaultCgroupsPath: id,
      noNewKeyring: flags['no-new-keyring'] === true,
      noPivot: flags['no-pivot'] === true,
    });
    init = undefined;
    if (c.terminal !== null && socket) {
      await sendTerminal(socket, c.terminal);
      c.terminal = null;
    }
    if (flags['pid-file']) writePidFile(flags['pid-file'] as string, c.pid);
    return { rt, c };
  } catch (e) {
    init?.kill('SIGKILL');
    throw new Error(`${command} failed: ${(e as Error).message}`);
  }
}

export async function create(g: Globals, argv: string[]): Promise<number> {
  await createContainer(g, 'create', parse('create', argv, CREATE_FLAGS), true);
  return 0;
}

/** Signals that `run` passes on to the container, as runc's signal forwarding does. */
export const FORWARDED = [
  'SIGINT',
  'SIGTERM',
  'SIGHUP',
  'SIGQUIT',
  'SIGUSR1',
  'SIGUSR2',
  'SIGWINCH',
] as const;

export async function run(g: Globals, argv: string[]): Promise<number> {
  const p = parse('run', argv, RUN_FLAGS);
  const detach = p.flags.detach === true;
  const refusal = fastRunRefusal(p.spec, { detach, noPivot: p.flags['no-pivot'] === true });
  if (refusal === null) return (await import('./run-fast.js')).runFastCommand(g, p);
  log('debug', `run ${p.id}: not on the fast path: ${refusal}`);
  const { rt, c } = await createContainer(g, 'run', p, detach);
  try {
    await rt.start(p.id);
  } catch (e) {
    await rt.delete(p.id, { force: true }).catch(() => {});
    throw new Error(`run failed: ${(e as Error).message}`);
  }
  if (detach) return 0;
  let relay: { done: Promise<void>; resize(): void } | null = null;
  if (c.terminal !== null) relay = (await import('./terminal.js')).relayTerminal(c.terminal);
  for (const sig of FORWARDED) {
    process.on(sig, () => {
      if (sig === 'SIGWINCH') relay?.resize();
      else
        try {
          c.process.kill(sig);
        } catch {
          // gone meanwhile
        }
    });
  }
  const code = await c.wait();
  await relay?.done;
  if (p.flags.keep !== true) {
    for (const w of await rt.delete(p.id, { force: true })) log('warning', w);
  }
  return code;
}
