import { existsSync, readdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mountsUnder, removeTree, tempDir } from '@corral/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import { buildLayer } from '../src/conformance/layers.js';
import { type BackendName, mountAll, Snapshotter, type UnionMount } from '../src/index.js';

let root = '';
const mounted: UnionMount[] = [];
afterEach(async () => {
  for (const m of mounted.splice(0)) await m.unmount().catch(() => {});
  if (root) removeTree(root);
  root = '';
});

async function mountAt(specs: Parameters<typeof mountAll>[0], target: string): Promise<UnionMount> {
  const m = await mountAll(specs, target);
  mounted.push(m);
  return m;
}

// containerd's model: the snapshotter says what to mount as data, mountAll is the one place
// that mounts it. Run for each backend by name.
describe.each(['overlay', 'fuse'] as BackendName[])('Snapshotter (%s)', (backend) => {
  it('prepares a writable snapshot as data, mounted by mountAll; usage, view and remove', async () => {
    root = tempDir(`snap-${backend}`, 'snaps', 'rw', 'ro');
    buildLayer(join(root, 'l1'), { etc: { motd: 'hi' } });
    buildLayer(join(root, 'l0'), { etc: { hosts: 'h', gone: 'g' }, bin: { sh: 'sh' } });
    const parents = [join(root, 'l1'), join(root, 'l0')];
    const snaps = new Snapshotter((key) => join(root, 'snaps', key), backend);

    const specs = snaps.prepare('c1', parents);
    const dir = join(root, 'snaps', 'c1');
    expect(specs).toEqual([
      { type: backend, lower: parents, upper: join(dir, 'upper'), work: join(dir, 'work') },
    ]);
    expect(readdirSync(dir).sort()).toEqual(['upper', 'work']);
    expect(mountsUnder(root)).toEqual([]); // data only: nothing is mounted yet

    const rw = join(root, 'rw');
    const m = await mountAt(specs, rw);
    expect(readdirSync(join(rw, 'etc')).sort()).toEqual(['gone', 'hosts', 'motd']);
    writeFileSync(join(rw, 'etc', 'new'), 'x'.repeat(5000));
    unlinkSync(join(rw, 'etc', 'gone'));
    await m.unmount();
    mounted.splice(mounted.indexOf(m), 1);

    // The layer holds etc/, etc/new and the whiteout of etc/gone.
    const usage = snaps.usage('c1');
    expect(usage.inodes).toBe(3);
    expect(usage.size).toBeGreaterThanOrEqual(5000);

    const ro = join(root, 'ro');
    await mountAt(snaps.view('c1', parents), ro);
    expect(readdirSync(join(ro, 'etc')).sort()).toEqual(['hosts', 'motd', 'new']);
    expect(readFileSync(join(ro, 'etc', 'new'), 'utf8')).toHaveLength(5000);
    expect(() => writeFileSync(join(ro, 'etc', 'x'), 'x')).toThrow(/EROFS|read-only/);

    snaps.remove('c1');
    expect(existsSync(join(dir, 'upper')) || existsSync(join(dir, 'work'))).toBe(false);
  });

  it('mountAll clears what a crash left at the target, and takes one spec per root', async () => {
    root = tempDir(`snap-${backend}`, 'snaps', 'rw');
    buildLayer(join(root, 'l0'), { a: 'a' });
    const snaps = new Snapshotter((key) => join(root, 'snaps', key), backend);
    const rw = join(root, 'rw');
    // A mount left behind (its owner died without unmounting): the next mountAll replaces it.
    await mountAll(snaps.prepare('c1', [join(root, 'l0')]), rw);
    await mountAt(snaps.mounts('c1', [join(root, 'l0')]), rw);
    expect(mountsUnder(root)).toHaveLength(1);
    expect(readFileSync(join(rw, 'a'), 'utf8')).toBe('a');
    const two = [...snaps.view('c1', [join(root, 'l0')]), ...snaps.view('c1', [join(root, 'l0')])];
    await expect(mountAll(two, join(root, 'rw'))).rejects.toMatchObject({ code: 'BAD_OPTIONS' });
    expect(() => new Snapshotter(() => root, 'no-such-backend')).toThrow(/no-such-backend/);
  });

  it('unmount takes a root off; cleanup clears a mount a crash left', async () => {
    root = tempDir(`snap-${backend}`, 'snaps', 'rw');
    buildLayer(join(root, 'l0'), { a: 'a' });
    const snaps = new Snapshotter((key) => join(root, 'snaps', key), backend);
    const rw = join(root, 'rw');
    await mountAll(snaps.prepare('c1', [join(root, 'l0')]), rw);
    await snaps.unmount(rw);
    expect(mountsUnder(root)).toEqual([]);
    await snaps.unmount(rw); // nothing mounted: no error

    // A root left by an owner that never unmounted (a crash).
    await mountAll(snaps.view('c1', [join(root, 'l0')]), rw);
    expect(mountsUnder(root)).toHaveLength(1);
    expect(snaps.cleanup(rw)).toEqual({ unmounted: 1 });
    expect(mountsUnder(root)).toEqual([]);
    expect(snaps.cleanup(rw)).toEqual({ unmounted: 0 });
    expect(readFileSync(join(root, 'l0', 'a'), 'utf8')).toBe('a'); // the layers untouched
  });
});
