// corral commit -c / import -c -m, daemonless and through corrald (--host): the same
// Dockerfile instructions, parsed once by the engine (applyChanges), make the same config.
import { join } from 'node:path';
import { Cleanups, corralBin, exec, runCorral } from '@corral/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Daemon, startDaemonWithMaker } from '../../daemon/test/daemon.js';

const c = new Cleanups();
let d: Daemon;
beforeAll(async () => {
  d = await startDaemonWithMaker(c, 'made');
});
afterAll(() => c.run());

const modes = {
  daemonless: (args: string[]) => runCorral(d.root, args),
  'through corrald': (args: string[]) =>
    exec(process.execPath, ['--', corralBin, '--host', `unix://${d.socket}`, ...args]),
};

describe.each(Object.entries(modes))('corral commit and import with changes, %s', (mode, corral) => {
  const must = async (args: string[]) => {
    const r = await corral(args);
    if (r.status !== 0) throw new Error(`corral ${args.join(' ')}: ${r.stderr}`);
    return r;
  };
  const config = async (ref: string) => JSON.parse((await must(['inspect', ref])).stdout)[0].Config;
  const tag = mode === 'daemonless' ? 'local' : 'remote';

  it('commit -c sets the config, -m the comment; the image runs with it', async () => {
    await must([
      'commit',
      '-c',
      'CMD ["cat", "/made"]',
      '-c',
      'ENV A=1 B="two words"',
      '-c',
      'WORKDIR /tmp',
      '-m',
      'changed',
      'maker',
      `changed:${tag}`,
    ]);
    const cfg = await config(`changed:${tag}`);
    expect(cfg.Cmd).toEqual(['cat', '/made']);
    expect(cfg.Env).toEqual(expect.arrayContaining(['A=1', 'B=two words']));
    expect(cfg.WorkingDir).toBe('/tmp');
    expect((await must(['run', '--rm', '--network', 'none', `changed:${tag}`])).out).toBe('made');
  });

  it('import -c -m of an exported root', async () => {
    const tar = join(d.root, '..', `rootfs-${tag}.tar`);
    await must(['export', '-o', tar, 'maker']);
    const id = (
      await must(['import', '-c', 'CMD ["cat", "/made"]', '-m', 'from a tarball', tar, `imported:${tag}`])
    ).out;
    expect(id).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect((await config(`imported:${tag}`)).Cmd).toEqual(['cat', '/made']);
    expect((await must(['run', '--rm', '--network', 'none', `imported:${tag}`])).out).toBe('made');
  });

  it('refuses an instruction that is not a change, naming it', async () => {
    const r = await corral(['commit', '-c', 'RUN rm -rf /', 'maker', `refused:${tag}`]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('invalid change "RUN rm -rf /": RUN is not a valid change command');
  });
});
