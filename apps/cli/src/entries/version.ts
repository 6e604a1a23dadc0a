// `corral version` alone, bundled on its own (dist/bundle/version.cjs): see ../cli.ts.
import { runCli } from '../cli.js';
import { version } from '../commands/about.js';

runCli([version]);
