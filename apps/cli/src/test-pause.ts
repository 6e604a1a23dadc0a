// Tests stop an attached `corral run` at one of its steps for real, to interrupt it there with
// a signal: CORRAL_TEST_PAUSE_AT=STEP:FIFO makes the run, once it reaches STEP ('record',
// 'mounted', 'bundle', 'created', 'started'), print `corral: paused at STEP` on stderr and
// block opening FIFO until the test opens it for writing (after its SIGTERM or SIGINT, which
// is handled once the run goes on; or never, for a SIGKILL). It is read from this process's
// own environment only, which no container can set (a container's environment is its spec's),
// and it can do nothing but wait: a step is never skipped or changed.
import { closeSync, openSync, readSync } from 'node:fs';

export function pauseAtStep(env = process.env): ((step: string) => void) | undefined {
  const v = env.CORRAL_TEST_PAUSE_AT;
  const i = v?.indexOf(':') ?? -1;
  if (!v || i < 1) return undefined;
  const at = v.slice(0, i);
  const fifo = v.slice(i + 1);
  return (step) => {
    if (step !== at) return;
    process.stderr.write(`corral: paused at ${step}\n`);
    const fd = openSync(fifo, 'r');
    try {
      readSync(fd, Buffer.alloc(1));
    } finally {
      closeSync(fd);
    }
  };
}
