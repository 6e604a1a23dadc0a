// create and run start the container's init before anything else loads (main.ts requires this
// module first), so that its Node start-up overlaps the loading of the runtime. A terminal
// needs an init started on the pty: none is started ahead then. Any problem is left for the
// command itself to report.
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fastRunRefusal } from '../fast-path.js';
import { spawnInit } from '../init-process.js';
import type { OciSpec } from '../spec.js';
import { parseFlags } from './args.js';
import { CREATE_FLAGS, putEarlyInit, RUN_FLAGS } from './create-flags.js';

export function startEarly(command: 'create' | 'run', argv: string[]): void {
  try {
    const { flags, args } = parseFlags(argv, command === 'run' ? RUN_FLAGS : CREATE_FLAGS);
    if (args.length !== 1) return;
    const bundle = resolve((flags.bundle as string | undefined) ?? '.');
    const spec = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8')) as OciSpec;
    if (spec.process?.terminal) return;
    // run's fast path needs no init (fast-path.ts).
    if (
      command === 'run' &&
      fastRunRefusal(spec, { detach: flags.detach === true, noPivot: flags['no-pivot'] === true }) === null
    )
      return;
    const preserveFds = (flags['preserve-fds'] as number | undefined) ?? 0;
    if (preserveFds < 0) return;
    const pidNamespace = spec.linux?.namespaces?.find((n) => n.type === 'pid')?.path || undefined;
    putEarlyInit({
      init: spawnInit({ stdio: 'inherit', preserveFds, pidNamespace }),
      preserveFds,
      pidNamespace,
    });
  } catch {
    // create reports it
  }
}
