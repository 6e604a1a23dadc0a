// Engine.start of an --rm container whose program ends at once: the container's watcher may
// finish and remove it at any moment after it reported the start, also while the start call
// is still reading the record to answer with (seen through corrald as a 404 from
// POST /start in 1 of 10 concurrent `docker run --rm`). A start that happened succeeds.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Cleanups, unmountUnder, until } from '@corral/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { Engine } from '../src/engine.js';

const cleanups = new Cleanups();
const root = cleanups.tempDir('engine-start-rm');
cleanups.add(() => unmountUnder(root));
cleanups.add(async () => {
  if (existsSync(join(root, 'network', 'networks'))) await (await Engine.open({ root })).networks.down();
});
afterAll(() => cleanups.run());

const containers = () => readdirSync(join(root, 'containers'));
const mounts = () =>
  readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => l.includes(root));

describe('start of --rm containers that end at once', () => {
  it('resolves for every one, with its record, though each is removed as soon as it ran', async () => {
    const engine = await Engine.open({ root });
    // Many at once on a busy machine: the removals land anywhere in the starts' answers.
    for (let round = 0; round < 3; round++) {
      const made = await Promise.all(
        Array.from({ length: 8 }, () =>
          engine.create({ image: 'busybox', cmd: ['true'], autoRemove: true, network: 'none' }),
        ),
      );
      const started = await Promise.allSettled(made.map((c) => engine.start(c.id)));
      expect(started.map((s) => (s.status === 'fulfilled' ? s.value.id : String(s.reason)))).toEqual(
        made.map((c) => c.id),
      );
      await until(() => containers().length === 0, 'the --rm containers to be removed');
    }
    expect(mounts()).toEqual([]);
  });

  it('resolves for one that had ended and was removed before the start returned', async () => {
    const engine = await Engine.open({ root });
    const c = await engine.create({ image: 'busybox', cmd: ['true'], autoRemove: true, network: 'none' });
    const r = await engine.start(c.id);
    expect(r.id).toBe(c.id);
    await until(() => !containers().includes(c.id), 'the container to be removed');
    // Gone for every later command, as Docker's: the start itself was not an error.
    expect(() => engine.get(c.id)).toThrow(expect.objectContaining({ kind: 'NotFound' }));
  });
});
