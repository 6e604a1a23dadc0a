import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * The file to run as a process of its own (`init`, `exec-init`): its bundle (dist/bundle, see
 * scripts/bundle.mjs) when the build made one, else the module beside `base`. `base` is the
 * URL of the calling module: one of dist, or a bundle in dist/bundle itself.
 */
export function processScript(name: string, base: string): string {
  for (const candidate of [`./bundle/${name}.cjs`, `./${name}.cjs`]) {
    const file = fileURLToPath(new URL(candidate, base));
    if (existsSync(file)) return file;
  }
  return fileURLToPath(new URL(`./${name}.js`, base));
}
