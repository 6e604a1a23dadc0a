import { mkdirSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { lsetxattr, mknod, S_IF } from '@corral/sys';
import { removeTree, tempDir } from '@corral/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import { buildLayer } from '../src/conformance/layers.js';
import { diffUpper, formatChanges, OverlayUnionFs } from '../src/index.js';

let root = '';
afterEach(() => {
  if (root) removeTree(root);
  root = '';
});

describe('diffUpper', () => {
  it('lists what a container changed through a real overlay mount, like docker diff', async () => {
    root = tempDir('unionfs', 'u', 'w', 'm');
    buildLayer(join(root, 'l1'), { etc: { hosts: 'h', conf: { a: 'a' } }, bin: { sh: 'sh' } });
    buildLayer(join(root, 'l0'), { etc: { motd: 'm' }, var: { log: { old: 'o' } }, tmp: {} });
    const lower = [join(root, 'l0'), join(root, 'l1')];
    const m = await new OverlayUnionFs().mount({
      lower,
      upper: join(root, 'u'),
      work: join(root, 'w'),
      target: join(root, 'm'),
    });
    const at = (p: string) => join(root, 'm', p);
    writeFileSync(at('etc/hosts'), 'changed');
    unlinkSync(at('bin/sh'));
    writeFileSync(at('tmp/new'), 'n');
    mkdirSync(at('opt/app'), { recursive: true });
    writeFileSync(at('opt/app/x'), 'x');
    rmSync(at('var/log'), { recursive: true });
    mkdirSync(at('var/log'));
    writeFileSync(at('var/log/fresh'), 'f');
    rmSync(at('etc/conf'), { recursive: true });
    renameSync(at('etc/motd'), at('etc/motd.old'));
    await m.unmount();
    const changes = diffUpper(join(root, 'u'), lower);
    expect(formatChanges(changes).split('\n')).toEqual([
      'C /bin',
      'D /bin/sh',
      'C /etc',
      'D /etc/conf',
      'C /etc/hosts',
      'D /etc/motd',
      'A /etc/motd.old',
      'A /opt',
      'A /opt/app',
      'A /opt/app/x',
      'C /tmp',
      'A /tmp/new',
      'C /var',
      'C /var/log',
      'A /var/log/fresh',
      'D /var/log/old',
    ]);
  });

  it('reads layers made by hand: whiteouts, opaque and redirected folders, whiteouts in lowers', () => {
    root = tempDir('unionfs');
    buildLayer(join(root, 'low'), {
      a: 'a',
      gone: { $whiteout: true },
      d: { x: 'x', y: 'y' },
      moved: { inside: 'i' },
    });
    buildLayer(join(root, 'base'), { gone: 'hidden by the whiteout above' });
    const up = join(root, 'up');
    buildLayer(up, { a: 'changed', d: { $dir: { y: 'new y' }, opaque: true }, renamed: {} });
    mknod(join(up, 'gone'), S_IF.CHR | 0o600, 0); // not in the merged lowers: nothing to delete
    mknod(join(up, 'moved'), S_IF.CHR | 0o600, 0);
    lsetxattr(join(up, 'renamed'), 'trusted.overlay.redirect', '/moved');
    expect(diffUpper(up, [join(root, 'low'), join(root, 'base')])).toEqual([
      { kind: 'modified', path: '/a' },
      { kind: 'modified', path: '/d' },
      { kind: 'deleted', path: '/d/x' },
      { kind: 'modified', path: '/d/y' },
      { kind: 'deleted', path: '/moved' },
      { kind: 'added', path: '/renamed', from: '/moved' },
    ]);
  });

  it('with no lowers, every entry is added', () => {
    root = tempDir('unionfs');
    buildLayer(join(root, 'up'), { f: 'f', d: { g: 'g' } });
    expect(formatChanges(diffUpper(join(root, 'up')))).toBe('A /d\nA /d/g\nA /f');
  });
});
