// Swaps two names (say a folder and a symlink to a host folder) with renameat2 EXCHANGE, as
// fast as it can, until killed: what a container does to race corral while corral walks or
// resolves paths of its filesystem. Used by the escape tests of several packages.
// usage: node swap-racer.mjs PATH1 PATH2
import { AT, RENAME, renameat2 } from '../dist/index.js';

const [a, b] = process.argv.slice(2);
for (;;) renameat2(AT.FDCWD, a, AT.FDCWD, b, RENAME.EXCHANGE);
