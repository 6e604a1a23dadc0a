// `run` on the fast path (../fast-run.ts): the program is a child of this process, which
// forwards signals to it, waits for it and deletes the container as the other path does.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseSignal, pidfdSendSignal } from '@corral/sys';
import type { FastRun } from '../fast-run.js';
import { cgroupPids, removableWithoutKill, removeCgroupDirs } from '../start-stop.js';
import { readState } from '../state.js';
import type { Globals } from './args.js';
import { UsageError } from './args.js';
import { FORWARDED, writePidFile } from './create.js';
import { log } from './log.js';

export interface FastRunArgs {
  id: string;
  bundle: string;
  flags: Record<string, unknown>;
}

/**
 * Forwards FORWARDED signals to the program. Installed before the clone: a signal that comes
 * while the program starts is queued until its pidfd is known, never lost (nor the end of this
 * process, as a SIGTERM without a handler would be).
 */
function signalForwarder(): { to(pidfd: number): void; stop(): void } {
  let pidfd: number | null = null;
  const queued: string[] = [];
  const send = (sig: string) => {
    try {
      pidfdSendSignal(pidfd as number, parseSignal(sig));
    } catch {
      // ended meanwhile
    }
  };
  const handlers = FORWARDED.map((sig) => {
    const on = () => (pidfd === null ? queued.push(sig) : send(sig));
    process.on(sig, on);
    return [sig, on] as const;
  });
  return {
    to(fd) {
      pidfd = fd;
      for (const sig of queued.splice(0)) send(sig);
    },
    stop() {
      for (const [sig, on] of handlers) process.off(sig, on);
    },
  };
}

export async function runFastCommand(g: Globals, p: FastRunArgs): Promise<number> {
  const { id, bundle, flags } = p;
  if (flags['console-socket'])
    throw new UsageError('cannot use console socket if corral-runtime will not detach or allocate tty');
  log('debug', `run ${id} from ${bundle}: fast path (vfork child, no Node init)`);
  const { runFast } = await import('../fast-run.js');
  const forwarder = signalForwarder();
  let r: FastRun;
  let code: number;
  try {
    try {
      r = await runFast(g.root, id, bundle, {
        preserveFds: (flags['preserve-fds'] as number | undefined) ?? 0,
        noNewKeyring: flags['no-new-keyring'] === true,
        defaultCgroupsPath: id,
      });
    } catch (e) {
      throw new Error(`run failed: ${(e as Error).message}`);
    }
    forwarder.to(r.pidfd);
    if (flags['pid-file']) writePidFile(flags['pid-file'] as string, r.pid);
    code = await r.exited();
  } finally {
    forwarder.stop();
  }
  if (flags.keep !== true) {
    // The program has ended, so its PID namespace has: nothing to kill in the common case.
    const st = readState(g.root, id);
    if (removableWithoutKill(g.root, st) && cgroupPids(st)?.length === 0) {
      await removeCgroupDirs(st);
      rmSync(join(g.root, id), { recursive: true, force: true });
    } else {
      const { Runtime } = await import('../runtime.js');
      for (const w of await new Runtime({ root: g.root }).delete(id, { force: true })) log('warning', w);
    }
  }
  return code;
}
