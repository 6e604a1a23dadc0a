// One container through @corral/runtime alone, as `runc run` does it: create, start, wait,
// delete, in one fresh Node process. The init is started first, as corral's CLI does, so
// that its Node start-up overlaps loading the rest. Usage: node run-bundle.mjs STATE_ROOT BUNDLE
import { spawnInit } from '@corral/runtime/init-process';

const init = spawnInit({ stdio: 'inherit' });
const { randomBytes } = await import('node:crypto');
const { Runtime } = await import('@corral/runtime');

const [root, bundle] = process.argv.slice(2);
const rt = new Runtime({ root });
const id = `bench-${randomBytes(4).toString('hex')}`;
const c = await rt.create(id, bundle, { init });
await rt.start(id);
const code = await c.wait();
await rt.delete(id);
process.exitCode = code;
