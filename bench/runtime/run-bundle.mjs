// One container through @corral/runtime alone, as `runc run` does it: create, start, wait,
// delete, in one fresh Node process. Usage: node run-bundle.mjs STATE_ROOT BUNDLE
import { randomBytes } from 'node:crypto';
import { Runtime } from '@corral/runtime';

const [root, bundle] = process.argv.slice(2);
const rt = new Runtime({ root });
const id = `bench-${randomBytes(4).toString('hex')}`;
const c = await rt.create(id, bundle, { stdio: 'inherit' });
await rt.start(id);
const code = await c.wait();
await rt.delete(id);
process.exitCode = code;
