import { fileURLToPath } from 'node:url';
import { type ExecOptions, exec, must, type Result } from './exec.js';

/** The corral CLI of this work tree (apps/cli, built by the workspace build). */
export const corralBin = fileURLToPath(new URL('../../../apps/cli/bin/corral.cjs', import.meta.url));

// `--` first: Node 20 reads a `--env-file FILE` anywhere in its argv (a missing FILE ends it
// with "node: FILE: not found"), even after the script's name; not after `--`.

/** Runs `corral --root ROOT ARGS...` with this Node; never throws for a non-zero exit. */
export function runCorral(root: string, args: string[], opts: ExecOptions = {}): Promise<Result> {
  return exec(process.execPath, ['--', corralBin, '--root', root, ...args], opts);
}

/** Like runCorral, but a non-zero exit is an error that shows what corral printed. */
export function mustCorral(root: string, args: string[], opts: ExecOptions = {}): Promise<Result> {
  return must(process.execPath, ['--', corralBin, '--root', root, ...args], opts);
}
