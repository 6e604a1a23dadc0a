// The watcher of a detached container (like conmon or containerd-shim): started by
// Engine.start in its own session, it launches the container, keeps its output in the log
// file, reports to its parent on fd 3 (watcher-protocol.ts), and records the exit code when
// the container ends.
import { spawnInit } from '@corral/runtime/init-process';
import { PR, prctl } from '@corral/sys';

// The container's init starts first: its Node start-up overlaps loading the engine here.
const init = spawnInit({ stdio: ['ignore', 'pipe', 'pipe'] });
const { EngineContext } = await import('./context.js');
const { watchContainer } = await import('./attach.js');
const [root, id] = process.argv.slice(2);
// Orphans of the container would otherwise go to the machine's init, which reaps late.
prctl(PR.SET_CHILD_SUBREAPER, 1);
await watchContainer(new EngineContext({ root }), id, init);
