// A container's keeper (like conmon or containerd-shim): a small process on the host, in a
// session of its own, started by the front-end that creates the container (the CLI for `run`
// attached or detached, corrald, Engine.start). It starts the container's init first thing,
// so that it is its parent for good; the front-end creates and starts the container through
// the init's sync socket (keeper-protocol.ts). A fast keeper starts no init: it makes and
// starts the container itself once asked (keeper-fast.ts), its program's parent from the first
// instant just the same. While the front-end is there it only reports the exit code; once the
// front-end has gone it finishes the container alone (keeper-core.ts). The engine's code is
// loaded only when there is work for it: a kept container costs a bare keeper's memory.
//
// `keeper host DIR`: a shared keeper, one process for many containers of a resident front-end
// (keeper-host.ts).
//
// Its init (or program) is started with dieWithParent: a keeper that is SIGKILLed takes its
// container with it, and the next command records that (lifecycle.ts reconcile), so that no
// container ever runs with nothing to record how it ended.
import { Socket } from 'node:net';
import { cloexecFrom, PR, prctl, setCloexec } from '@corral/sys';
import { keepContainer, loadFastModule } from './keeper-core.js';
import { KEEPER_CONTROL_FD, KEEPER_SYNC_FD, type KeeperMode } from './keeper-protocol.js';

// Nothing may ptrace us or read our memory through /proc.
prctl(PR.SET_DUMPABLE, 0);
// Orphans of what the keeper runs (a storage server) come back to it, not to the machine's init.
prctl(PR.SET_CHILD_SUBREAPER, 1);

// Our sockets reach the front-end (a shared keeper has one, fd 3): no child of ours inherits
// them by accident (the init gets the sync socket as its fd 3 from spawn's own mapping, and
// closes it at exec). Nor any fd that the front-end leaked to us (one it inherited itself
// without close-on-exec): the init or program gets only what it is given (a parked keeper
// waits long, see keeper-pool.ts).
setCloexec(KEEPER_CONTROL_FD);
cloexecFrom(KEEPER_SYNC_FD);

if (process.argv[2] === 'host') {
  const { reportTrouble, runHost } = await import('./keeper-host.js');
  // One container's trouble (an exception, a rejection nobody handled) must not end the keeper
  // of the others: it is logged instead.
  process.setUncaughtExceptionCaptureCallback(reportTrouble);
  await runHost(process.argv[3]);
  process.exit(0);
}

const mode = process.argv[2] as KeeperMode;
const control = new Socket({ fd: KEEPER_CONTROL_FD, readable: true, writable: true });
control.on('error', () => {});

// A fast keeper starts no init: once the front-end has written the bundle it runs the
// container in a vfork child of its own, or starts an init after all when asked (a container
// the fast path cannot make). Attached and detached modes only. The runtime's code is loaded
// while the front-end makes the container's root and bundle.
const fast = process.argv[3] === 'fast' && mode !== 'tty';
const fastModule = fast ? loadFastModule() : null;
// What a detached keeper runs once it owns its container, loaded now (a keeper started ahead
// waits anyway), not on the way to the container's start.
if (mode !== 'attached')
  for (const m of [import('./logs.js'), import('./keeper-tasks.js')]) m.catch(() => {});

await keepContainer(control, { mode, fastModule, hosted: false });
process.exit(0);
