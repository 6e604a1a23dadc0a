import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cleanups } from '@corral/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { containerDirs, type Daemon, startDaemon } from './daemon.js';

// The docker CLI's volume commands and -v / --mount / --tmpfs against corrald (HostConfig.Binds,
// Mounts, Tmpfs, VolumesFrom, Config.Volumes and the /volumes endpoints), checked from inside
// the containers and on the host.
const c = new Cleanups();
let d: Daemon;
const tmp = mkdtempSync(join(tmpdir(), 'corrald-volumes-'));
c.add(() => rmSync(tmp, { recursive: true, force: true }));

beforeAll(async () => {
  d = await startDaemon(c);
  // Volumes left by a failing test go before the daemon's root does (a tmpfs one is a mount).
  c.add(async () => {
    await d.docker(['volume', 'prune', '-a', '-f']);
  });
});
afterAll(() => c.run());

const must = (args: string[], bin?: string) => d.must(args, { bin });
const volumes = async () => (await must(['volume', 'ls', '-q'])).out.split('\n').filter(Boolean);

describe('docker CLI 28: volumes through corrald', () => {
  it('volume create, ls, inspect, rm (in use: refused), prune', async () => {
    expect((await must(['volume', 'create', '--label', 'k=v', 'dv1'])).out).toBe('dv1');
    expect(await volumes()).toEqual(['dv1']);
    const inspect = await must([
      'volume',
      'inspect',
      '--format',
      '{{.Driver}} {{.Mountpoint}} {{.Labels.k}}',
      'dv1',
    ]);
    expect(inspect.out).toBe(`local ${join(d.root, 'volumes', 'dv1', '_data')} v`);
    const id = (await must(['create', '-v', 'dv1:/data', 'busybox', 'true'])).out;
    const refused = await d.docker(['volume', 'rm', 'dv1']);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(/volume is in use/);
    await must(['rm', id]);
    await must(['volume', 'rm', 'dv1']);
    await must(['create', '-v', '/anon', 'busybox', 'true']).then((r) => must(['rm', r.out]));
    expect(await volumes()).toHaveLength(1);
    expect((await must(['volume', 'prune', '-f'])).out).toMatch(/Deleted Volumes:\n[0-9a-f]{64}/);
    expect(await volumes()).toEqual([]);
  });

  it('run -v HOST:CTR writes on the host; :ro is EROFS; inspect shows Mounts and Binds', async () => {
    const host = join(tmp, 'out');
    const r = await d.docker([
      'run',
      '--name',
      'binds',
      '-v',
      `${host}:/out`,
      '-v',
      `${tmp}:/ro:ro`,
      'busybox',
      'sh',
      '-c',
      'echo hi > /out/f; touch /ro/x',
    ]);
    expect(r.stderr).toMatch(/Read-only file system/);
    expect(readFileSync(join(host, 'f'), 'utf8')).toBe('hi\n');
    const [info] = JSON.parse((await must(['inspect', 'binds'])).out);
    // The docker CLI sends its -v values from a Go map: in any order, which dockerd keeps too.
    expect([...info.HostConfig.Binds].sort()).toEqual([`${host}:/out`, `${tmp}:/ro:ro`].sort());
    expect(info.Mounts).toHaveLength(2);
    expect(info.Mounts).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ Type: 'bind', Source: host, Destination: '/out', RW: true }),
        expect.objectContaining({ Type: 'bind', Source: tmp, Destination: '/ro', RW: false }),
      ]),
    );
    await must(['rm', 'binds']);
  });

  it('a named volume persists; --rm and rm -v remove anonymous volumes; --volumes-from shares', async () => {
    await must(['run', '--rm', '-v', 'keep:/k', 'busybox', 'sh', '-c', 'echo kept > /k/f']);
    await must(['run', '--rm', '-v', '/anon', '--mount', 'type=volume,dst=/anon2', 'busybox', 'true']);
    expect(await volumes()).toEqual(['keep']);
    await must(['create', '--name', 'holder', '-v', 'keep:/k', '-v', '/anon', 'busybox', 'true']);
    const ps = await must([
      'ps',
      '-a',
      '--filter',
      'name=holder',
      '--format',
      '{{.Mounts}}|{{.LocalVolumes}}',
    ]);
    expect(ps.out).toMatch(/^keep,[0-9a-f]{14}…\|2$/);
    const r = await must(['run', '--rm', '--volumes-from', 'holder:ro', 'busybox', 'cat', '/k/f']);
    expect(r.out).toBe('kept');
    expect(await volumes()).toHaveLength(2);
    await must(['rm', '-v', 'holder']);
    expect(await volumes()).toEqual(['keep']);
    await must(['volume', 'rm', 'keep']);
  });

  it('--tmpfs and --mount type=tmpfs: the size and mode asked for', async () => {
    const r = await must([
      'run',
      '--rm',
      '--tmpfs',
      '/t1:size=1m,mode=700',
      '--mount',
      'type=tmpfs,dst=/t2,tmpfs-size=2m,tmpfs-mode=1770',
      'busybox',
      'sh',
      '-c',
      "stat -c %a /t1 /t2; df -k /t1 /t2 | awk 'NR>1{print $2}'",
    ]);
    expect(r.out.split('\n')).toEqual(['700', '1770', '1024', '2048']);
  });

  it('a field that would change the mount and that corral does not do is a 400 naming it', async () => {
    const r = await d.docker([
      'run',
      '--rm',
      '--mount',
      `type=bind,src=${tmp},dst=/x,readonly,bind-propagation=rprivate,bind-recursive=readonly`,
      'busybox',
      'true',
    ]);
    expect(r.status).toBe(125);
    expect(r.stderr).toMatch(/HostConfig\.Mounts\[0\]\.BindOptions\.ReadOnly\w+ is not supported by corral/);
    expect(containerDirs(d.root)).toEqual([]);
    const bad = await d.docker(['run', '--rm', '-v', 'a/b:/x', 'busybox', 'true']);
    expect(bad.status).toBe(125);
    expect(containerDirs(d.root)).toEqual([]);
  });
});

describe.skipIf(!existsSync('/usr/bin/docker'))('Debian docker CLI 20.10 (API 1.41): volumes', () => {
  it('volume create, ls, rm and run -v', async () => {
    const bin = '/usr/bin/docker';
    await must(['volume', 'create', 'old1'], bin);
    expect((await must(['volume', 'ls', '-q'], bin)).out).toBe('old1');
    await must(['run', '--rm', '-v', 'old1:/o', 'busybox', 'sh', '-c', 'echo v > /o/f'], bin);
    expect((await must(['run', '--rm', '-v', 'old1:/o', 'busybox', 'cat', '/o/f'], bin)).out).toBe('v');
    await must(['volume', 'rm', 'old1'], bin);
    expect((await must(['volume', 'ls', '-q'], bin)).out).toBe('');
    // API 1.41: prune takes named volumes too (only anonymous ones from 1.42 on).
    await must(['volume', 'create', 'old2'], bin);
    expect((await must(['volume', 'prune', '-f'], bin)).out).toContain('old2');
    expect((await must(['volume', 'ls', '-q'], bin)).out).toBe('');
  });
});
