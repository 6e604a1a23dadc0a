// After the tests: bridges (and their iptables rules) of data roots that were removed without
// `corral network down` are a test's leftovers. Named here, with the root that made them, so
// the test can be found and mended, and removed so the machine is left as it was found.
import { sweepOrphanBridges } from '../packages/network/dist/index.js';

const removed = await sweepOrphanBridges();
for (const { bridge, owner } of removed)
  console.error(`tests left bridge ${bridge} behind (its data root ${owner} is gone): removed`);
