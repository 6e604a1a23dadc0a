// `corral ps` alone, bundled on its own (dist/bundle/ps.cjs): see ../cli.ts.
import { runCli } from '../cli.js';
import { ps } from '../commands/ps.js';

runCli([ps]);
