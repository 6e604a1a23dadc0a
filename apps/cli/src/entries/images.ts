// `corral images` alone, bundled on its own (dist/bundle/images.cjs): see ../cli.ts.
import { runCli } from '../cli.js';
import { images } from '../commands/image-list.js';

runCli([images]);
