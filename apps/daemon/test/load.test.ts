import { Cleanups, mountsUnder } from '@corral/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { containerDirs, type Daemon, startDaemon } from './daemon.js';

// Concurrent docker run --rm through one corrald (10 here, on machines that several engineers
// share; the 50 is a benchmark's job): every run prints its line and exits 0, and
// nothing is left: no container folder, no mount under the data root.
const c = new Cleanups();
let d: Daemon;
beforeAll(async () => {
  d = await startDaemon(c);
  await d.docker(['run', '--rm', '--network', 'none', 'busybox', 'true']); // the embedded image made once
});
afterAll(() => c.run());

describe('concurrent runs through one corrald', () => {
  it('all succeed and leave nothing behind', async () => {
    const runs = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        d.docker(['run', '--rm', '--network', 'none', 'busybox', 'echo', `run${i}`]),
      ),
    );
    expect(runs.map((r) => [r.status, r.out, r.stderr])).toEqual(runs.map((_, i) => [0, `run${i}`, '']));
    expect(containerDirs(d.root)).toEqual([]);
    expect(mountsUnder(d.root)).toEqual([]);
  });
});
