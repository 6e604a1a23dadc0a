// One attached `run --rm busybox true` through the engine API, as the CLI does it, with the
// container's init started ahead either by a keeper (`keeper`: the CLI's way, the container
// outlives this process) or directly as this process's child (`init`: the way before keepers,
// the container dies with this process). bench/engine/keeper-cost.mjs times the two side by
// side: the difference is what the keeper costs an attached run.
// Run as root after `npm run build`: node bench/engine/run-once.mjs keeper|init ROOT
import { KeeperClient, spawnInit } from '@corral/engine/init-ahead';

const [how, root] = process.argv.slice(2);
const ahead =
  how === 'keeper'
    ? { keeper: new KeeperClient('attached', ['ignore', 'ignore', 2]) }
    : { init: spawnInit({ stdio: ['ignore', 'ignore', 2] }) };
const { Engine } = await import('@corral/engine');
const engine = await Engine.open({ root });
const handle = await engine.run(
  { image: 'busybox', cmd: ['true'], autoRemove: true },
  { stdin: 'ignore', stdout: 'ignore', stderr: 2 },
  ahead,
);
process.exitCode = await handle.wait();
