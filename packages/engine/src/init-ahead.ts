// A front-end may start a container's init before it loads the engine, so that the init's Node
// start-up overlaps its own (the CLI does for an attached `corral run`). This module is the
// engine's subpath `@corral/engine/init-ahead`: it loads the runtime's init spawner and nothing
// else. The init it gives is handed to `Engine.run` (RunExtras.init), or killed if unused.
export type { Pid1Process } from '@corral/pidns';
export { spawnInit } from '@corral/runtime/init-process';
// A container's keeper started ahead, which starts its init at once (see keeper.ts).
export { KeeperClient } from './keeper-client.js';
export type { KeeperMode } from './keeper-protocol.js';
