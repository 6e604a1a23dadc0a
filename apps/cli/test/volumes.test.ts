// `corral volume ...` and the mount flags of `run` as a user types them, checked from inside
// the containers and on the host.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { imageArchive } from '@corral/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { Sandbox } from './helpers.js';

const s = new Sandbox();
const tmp = mkdtempSync(join(tmpdir(), 'corral-cli-volumes-'));
afterAll(async () => {
  await s.corral(['volume', 'prune', '-a', '-f']);
  await s.teardown();
  rmSync(tmp, { recursive: true, force: true });
});

const volumes = async () => (await s.corral(['volume', 'ls', '-q'])).out.split('\n').filter(Boolean);
const containers = () =>
  existsSync(join(s.root, 'containers')) ? readdirSync(join(s.root, 'containers')) : [];

describe('corral volume', () => {
  it('create, ls, inspect, rm (refused while in use), prune', async () => {
    expect((await s.corral(['volume', 'create', '--label', 'team=a', 'cli1'])).out).toBe('cli1');
    expect((await s.corral(['volume', 'ls'])).out).toMatch(/DRIVER\s+VOLUME NAME\nlocal\s+cli1/);
    const [v] = JSON.parse((await s.corral(['volume', 'inspect', 'cli1'])).out);
    expect(v).toMatchObject({ Name: 'cli1', Driver: 'local', Labels: { team: 'a' } });
    expect(v.Mountpoint).toBe(join(s.root, 'volumes', 'cli1', '_data'));
    const c = await s.corral(['create', '-v', 'cli1:/data', 'busybox', 'true']);
    const rm = await s.corral(['volume', 'rm', 'cli1']);
    expect(rm.status).toBe(1);
    expect(rm.stderr).toMatch(/remove cli1: volume is in use/);
    await s.corral(['rm', c.out]);
    expect((await s.corral(['volume', 'rm', 'cli1'])).status).toBe(0);
    expect((await s.corral(['volume', 'rm', 'cli1'])).stderr).toMatch(/no such volume/);
    expect((await s.corral(['volume', 'rm', '-f', 'cli1'])).status).toBe(0);
    await s.corral(['create', '-v', '/anon', 'busybox', 'true']).then((r) => s.corral(['rm', r.out]));
    expect(await volumes()).toHaveLength(1);
    const prune = await s.corral(['volume', 'prune', '-f']);
    expect(prune.out).toMatch(/Deleted Volumes:\n[0-9a-f]{64}/);
    expect(await volumes()).toEqual([]);
  });

  it('-o type=tmpfs makes a volume on a tmpfs of that size', async () => {
    await s.corral([
      'volume',
      'create',
      '-o',
      'type=tmpfs',
      '-o',
      'device=tmpfs',
      '-o',
      'o=size=2m',
      'ramcli',
    ]);
    const r = await s.corral([
      'run',
      '--rm',
      '-v',
      'ramcli:/r',
      'busybox',
      'sh',
      '-c',
      "df -k /r | awk 'NR>1{print $2}'",
    ]);
    expect(r.out).toBe('2048');
    expect((await s.corral(['volume', 'rm', 'ramcli'])).status).toBe(0);
    expect(s.mounts()).toEqual([]);
  });
});

describe('run with -v, --mount, --tmpfs', () => {
  it('a file written through a bind is on the host; ro is EROFS; inspect lists the mounts', async () => {
    const host = join(tmp, 'out');
    const r = await s.corral([
      'run',
      '--name',
      'binder',
      '-v',
      `${host}:/out`,
      '-v',
      `${tmp}:/ro:ro,Z`,
      'busybox',
      'sh',
      '-c',
      'echo hi > /out/f; touch /ro/x',
    ]);
    expect(r.stderr).toMatch(/Read-only file system/);
    expect(r.stderr).toMatch(/note: -v .*:\/ro:ro,Z: z\/Z \(SELinux relabeling\) is ignored/);
    expect(readFileSync(join(host, 'f'), 'utf8')).toBe('hi\n');
    const [c] = JSON.parse((await s.corral(['inspect', 'binder'])).out);
    expect(c.mounts).toEqual([
      expect.objectContaining({ Type: 'bind', Source: host, Destination: '/out', RW: true }),
      expect.objectContaining({ Type: 'bind', Source: tmp, Destination: '/ro', RW: false, Mode: 'ro,Z' }),
    ]);
    const ps = await s.corral([
      'ps',
      '-a',
      '--no-trunc',
      '--filter',
      'name=binder',
      '--format',
      '{{.Mounts}}|{{.LocalVolumes}}',
    ]);
    expect(ps.out).toBe(`${host},${tmp}|0`);
    await s.corral(['rm', 'binder']);
  });

  it('a named volume persists across containers; --rm takes anonymous volumes away; rm -v too', async () => {
    await s.corral(['run', '--rm', '-v', 'keep:/k', 'busybox', 'sh', '-c', 'echo kept > /k/f']);
    expect((await s.corral(['run', '--rm', '-v', 'keep:/k', 'busybox', 'cat', '/k/f'])).out).toBe('kept');
    await s.corral(['run', '--rm', '-v', '/anon', '--mount', 'type=volume,dst=/anon2', 'busybox', 'true']);
    expect(await volumes()).toEqual(['keep']);
    const id = (await s.corral(['create', '-v', '/anon', 'busybox', 'true'])).out;
    expect(await volumes()).toHaveLength(2);
    await s.corral(['rm', '-v', id]);
    expect(await volumes()).toEqual(['keep']);
    await s.corral(['volume', 'rm', 'keep']);
  });

  it('--tmpfs and --mount type=tmpfs: the size and mode asked for', async () => {
    const r = await s.corral([
      'run',
      '--rm',
      '--tmpfs',
      '/t1:size=1m,mode=700',
      '--mount',
      'type=tmpfs,dst=/t2,tmpfs-size=3m,tmpfs-mode=1770',
      'busybox',
      'sh',
      '-c',
      "stat -c %a /t1 /t2; df -k /t1 /t2 | awk 'NR>1{print $2}'",
    ]);
    expect(r.out.split('\n')).toEqual(['700', '1770', '1024', '3072']);
  });

  it('containers started at once with one new volume each see it filled once from the image', async () => {
    const archive = imageArchive(join(tmp, 'img'), { tag: 'clivol:1', files: { 'data/a/b.txt': 'seed\n' } });
    await s.corral(['load', '-i', archive]);
    const runs = await Promise.all(
      [1, 2, 3].map(() => s.corral(['run', '--rm', '-v', 'race1:/data', 'clivol:1', 'cat', '/data/a/b.txt'])),
    );
    expect(runs.map((r) => [r.status, r.out, r.stderr])).toEqual([1, 2, 3].map(() => [0, 'seed', '']));
    await s.corral(['volume', 'rm', 'race1']);
  });

  it('--volumes-from sees the same data', async () => {
    await s.corral(['create', '--name', 'data1', '-v', 'vf:/shared', 'busybox', 'true']);
    await s.corral([
      'run',
      '--rm',
      '--volumes-from',
      'data1',
      'busybox',
      'sh',
      '-c',
      'echo same > /shared/f',
    ]);
    const r = await s.corral(['run', '--rm', '--volumes-from', 'data1:ro', 'busybox', 'cat', '/shared/f']);
    expect(r.out).toBe('same');
    await s.corral(['rm', 'data1']);
    await s.corral(['volume', 'rm', 'vf']);
  });
});

describe('bad input: exit 125, an error naming the flag, nothing created', () => {
  it.each([
    [['--mount', 'type=bind,src=/tmp,dst=/x,colour=red'], /--mount: unknown key 'colour'/],
    [['--mount', 'type=bind,src=/tmp,dst=relative'], /--mount: .*'relative' mount path must be absolute/],
    [['-v', '/tmp:relative'], /--volume: .*'relative' mount path must be absolute/],
    [['-v', 'a/b:/x'], /--volume a\/b:\/x: "a\/b" includes invalid characters/],
    [
      ['--mount', `type=bind,src=${join(tmpdir(), 'corral-no-such-dir')},dst=/x`],
      /bind source path does not exist/,
    ],
    [['--tmpfs', '/t:bogus'], /--tmpfs: invalid tmpfs option 'bogus'/],
    [['--volumes-from', 'nosuchcontainer'], /No such container: nosuchcontainer/],
  ])('%j', async (flags, message) => {
    const before = { containers: containers(), volumes: await volumes() };
    const r = await s.corral(['run', '--rm', '--name', 'never', ...flags, 'busybox', 'true']);
    expect(r.status).toBe(125);
    expect(r.stderr).toMatch(message);
    expect({ containers: containers(), volumes: await volumes() }).toEqual(before);
  });
});
