import { existsSync, mkdirSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseMountOptions, Runtime, RuntimeError, secureJoin, spawnInit } from '../dist/index.js';
import { bundleMaker, busyboxRootfs, collect, tempDir } from './helpers.js';

const tmp = tempDir('runtime');
const rootfs = join(tmp, 'rootfs');
const rt = new Runtime({ root: join(tmp, 'state') });
const bundle = bundleMaker(tmp, rootfs);

beforeAll(() => {
  busyboxRootfs(rootfs);
});
afterAll(async () => {
  for (const id of rt.list()) await rt.delete(id, { force: true });
  rmSync(tmp, { recursive: true, force: true });
});

describe('Runtime', () => {
  it('create parks the init until start; state follows created, running, stopped', async () => {
    const c = await rt.create('life', bundle(['sh', '-c', 'echo pid $$ host $(hostname)']), {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out = collect(c.stdout);
    expect(rt.state('life')).toMatchObject({ id: 'life', status: 'created', pid: c.pid });
    expect(rt.list()).toContain('life');
    await rt.start('life');
    expect(await c.wait()).toBe(0);
    expect(out()).toBe('pid 1 host rt\n');
    expect(rt.state('life').status).toBe('stopped');
    await rt.delete('life');
    expect(() => rt.state('life')).toThrow('container life does not exist');
  });

  it('kills through the state from any process, and refuses to delete a running container', async () => {
    const c = await rt.create('victim', bundle(['sleep', '100']), { stdio: 'ignore' });
    await rt.start('victim');
    expect(rt.state('victim').status).toBe('running');
    await expect(rt.delete('victim')).rejects.toThrow('stop it first');
    rt.kill('victim', 'SIGKILL');
    expect(await c.wait()).toBe(137);
    expect(() => rt.kill('victim', 'SIGTERM')).toThrow('is not running');
    await rt.delete('victim');
  });

  it('force-deletes a running container', async () => {
    const c = await rt.create('forced', bundle(['sleep', '100']), { stdio: 'ignore' });
    await rt.start('forced');
    await rt.delete('forced', { force: true });
    expect(await c.wait()).toBe(137);
    expect(existsSync(join(tmp, 'state', 'forced'))).toBe(false);
  });

  it('fails create with 127 for a missing program and leaves no state', async () => {
    const e = await rt.create('missing', bundle(['nope'])).catch((x) => x);
    expect(e).toBeInstanceOf(RuntimeError);
    expect(e.exitCode).toBe(127);
    expect(rt.list()).not.toContain('missing');
    expect(existsSync(join(tmp, 'state', 'missing'))).toBe(false);
  });

  it('refuses a bad spec, an existing id and a bad id', async () => {
    await expect(
      rt.create(
        'bad',
        bundle(['sh'], (s) => (s.process.args = [])),
      ),
    ).rejects.toThrow('process.args must be a non-empty list');
    await expect(
      rt.create(
        'nopid',
        bundle(['sh'], (s) => (s.linux!.namespaces = [{ type: 'mount' }])),
      ),
    ).rejects.toThrow('new pid namespace');
    await expect(rt.create('../x', bundle(['sh']))).rejects.toThrow('invalid container id');
    const c = await rt.create('twice', bundle(['true']), { stdio: 'ignore' });
    await expect(rt.create('twice', bundle(['true']))).rejects.toThrow('container twice already exists');
    await rt.delete('twice', { force: true });
    await c.wait();
  });

  it('applies rlimits, a read-only root and masked paths', async () => {
    const c = await rt.create(
      'limits',
      bundle(
        ['sh', '-c', 'ulimit -n; touch /x 2>/dev/null || echo ro; cat /proc/version 2>&1 | wc -c'],
        (s) => {
          s.process.rlimits = [{ type: 'RLIMIT_NOFILE', soft: 123, hard: 456 }];
          s.root.readonly = true;
          s.linux!.maskedPaths = ['/proc/version'];
        },
      ),
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const out = collect(c.stdout);
    await rt.start('limits');
    expect(await c.wait()).toBe(0);
    expect(out().split('\n')).toEqual(['123', 'ro', '0', '']);
    await rt.delete('limits');
  });

  it('says clearly when an rlimit is above the hard limit it may set', async () => {
    const b = bundle(
      ['true'],
      (s) => (s.process.rlimits = [{ type: 'RLIMIT_NOFILE', soft: 1 << 30, hard: 1 << 30 }]),
    );
    await expect(rt.create('rlimit', b, { stdio: 'ignore' })).rejects.toThrow(/setting RLIMIT_NOFILE.*EPERM/);
  });

  it('places the init before setup through beforeSetup', async () => {
    let seen = 0;
    const c = await rt.create('hook', bundle(['true']), {
      stdio: 'ignore',
      beforeSetup: (pid) => {
        seen = pid;
      },
    });
    expect(seen).toBe(c.pid);
    await rt.start('hook');
    await c.wait();
    await rt.delete('hook');
  });
});

describe('inits started ahead', () => {
  it('runs a container on an init spawned before create, with stdin replaced by /dev/null', async () => {
    const init = spawnInit({ stdio: ['pipe', 'pipe', 'pipe'] });
    init.child.stdin!.write('never read\n');
    const c = await rt.create('ahead', bundle(['sh', '-c', 'echo pid $$; cat; echo end']), {
      init,
      nullStdin: true,
    });
    expect(c.pid).toBe(init.pid);
    const out = collect(c.stdout);
    await rt.start('ahead');
    expect(await c.wait()).toBe(0);
    expect(out()).toBe('pid 1\nend\n');
    await rt.delete('ahead');
  });

  it('an init never handed a spec ends when its socket closes', async () => {
    const init = spawnInit({ stdio: 'ignore' });
    (init.child.stdio[3] as unknown as { destroy(): void }).destroy();
    expect(await init.wait()).not.toBe(0);
  });
});

describe('secureJoin', () => {
  it('keeps every path inside the root, following symlinks inside it', () => {
    const root = join(tmp, 'sj');
    mkdirSync(join(root, 'a/b'), { recursive: true });
    symlinkSync('/a', join(root, 'abs'));
    symlinkSync('../../../../etc', join(root, 'a/b/up'));
    expect(secureJoin(root, '/a/b')).toBe(join(root, 'a/b'));
    expect(secureJoin(root, '../../etc/passwd')).toBe(join(root, 'etc/passwd'));
    expect(secureJoin(root, '/abs/b')).toBe(join(root, 'a/b'));
    expect(secureJoin(root, '/a/b/up/passwd')).toBe(join(root, 'etc/passwd'));
  });
});

describe('parseMountOptions', () => {
  it('splits flags, propagation and filesystem data', () => {
    const o = parseMountOptions(['rbind', 'ro', 'nosuid', 'rprivate', 'mode=755', 'size=1m']);
    expect(o.bind && o.recursive).toBe(true);
    expect(o.flags & 1).toBe(1);
    expect(o.data).toBe('mode=755,size=1m');
    expect(o.propagation).not.toBe(0);
  });
});
