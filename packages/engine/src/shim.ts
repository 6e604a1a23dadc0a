// The watcher of a detached container (like conmon or containerd-shim): started by
// Engine.startDetached in its own session, it launches the container, keeps its output in the
// log file, reports "started" on fd 3, and records the exit code when the container ends.
import { closeSync, writeSync } from 'node:fs';
import { spawnInit } from '@corral/runtime/init-process';
import { PR, prctl } from '@corral/sys';

// The container's init starts first: its Node start-up overlaps loading the engine here.
const init = spawnInit({ stdio: ['ignore', 'pipe', 'pipe'] });
const { Engine } = await import('./engine.js');
const [root, id] = process.argv.slice(2);
// Orphans of the container would otherwise go to the machine's init, which reaps late.
prctl(PR.SET_CHILD_SUBREAPER, 1);
const engine = new Engine({ root });
await engine.watch(
  id,
  (msg) => {
    writeSync(3, `${JSON.stringify(msg)}\n`);
    closeSync(3);
  },
  init,
);
