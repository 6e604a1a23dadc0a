// Running corral-runtime (and runc beside it) as its consumers do: a process per command,
// stdio on files (a grandchild that keeps a pipe open would hold spawnSync forever, as an init
// parked by create does).
import { spawnSync } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { until as pollUntil } from '@corral/testkit';

export const BIN = fileURLToPath(new URL('../bin/corral-runtime.cjs', import.meta.url));

export interface Result {
  status: number | null;
  stdout: string;
  stderr: string;
}

let n = 0;

/** Runs `argv[0]` with the rest, stdout and stderr on files in `dir`; extra fds from 3 on. */
export function runCommand(
  dir: string,
  argv: string[],
  options: { input?: string; fds?: number[]; env?: NodeJS.ProcessEnv; timeout?: number } = {},
): Result {
  const out = join(dir, `out-${process.pid}-${n}`);
  const err = join(dir, `err-${process.pid}-${n++}`);
  const o = openSync(out, 'w');
  const e = openSync(err, 'w');
  try {
    const r = spawnSync(argv[0], argv.slice(1), {
      stdio: [options.input === undefined ? 'ignore' : 'pipe', o, e, ...(options.fds ?? [])],
      input: options.input,
      env: options.env ?? process.env,
      timeout: options.timeout ?? 60_000,
    });
    return { status: r.status, stdout: readFileSync(out, 'utf8'), stderr: readFileSync(err, 'utf8') };
  } finally {
    closeSync(o);
    closeSync(e);
  }
}

/** corral-runtime with `--root root` (and global flags before the command). */
export function corralRuntime(dir: string, root: string) {
  return (args: string[], options?: Parameters<typeof runCommand>[2]) =>
    runCommand(dir, [process.execPath, BIN, '--root', root, ...args], options);
}

/** runc with `--root root`, for the same commands. */
export function runc(dir: string, root: string) {
  return (args: string[], options?: Parameters<typeof runCommand>[2]) =>
    runCommand(dir, ['runc', '--root', root, ...args], options);
}

/** Waits until `check` is true (polling), or throws after `ms`: testkit's `until`, in this file's argument order. */
export async function until(check: () => boolean, ms = 10_000, what = 'condition'): Promise<void> {
  await pollUntil(check, what, ms);
}
