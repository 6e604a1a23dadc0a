import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { close, openRoot } from '@corral/sys';
import { Cleanups } from '@corral/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import {
  hostnameFile,
  hostsFile,
  NetworkError,
  parseNetworkMode,
  resolvConf,
  writeEtcFiles,
} from '../src/index.js';

const c = new Cleanups();
afterEach(() => c.run());

function root(): { dir: string; fd: number } {
  const dir = c.tempDir('net-etc', 'rootfs/etc');
  const fd = openRoot(join(dir, 'rootfs'));
  c.add(() => close(fd));
  return { dir, fd };
}

describe("a container's /etc files, written inside its root", () => {
  it('writes hosts, hostname and resolv.conf (created when missing, replaced when regular)', () => {
    const { dir, fd } = root();
    writeFileSync(
      join(dir, 'rootfs/etc/hosts'),
      'old contents that are longer than the new ones '.repeat(10),
    );
    const hosts = hostsFile({ hostname: 'web', ips: ['10.213.0.2'] });
    writeEtcFiles(fd, {
      hosts,
      hostname: hostnameFile('web'),
      resolvConf: resolvConf('nameserver 127.0.0.53\n'),
    });
    expect(readFileSync(join(dir, 'rootfs/etc/hosts'), 'utf8')).toBe(hosts);
    expect(readFileSync(join(dir, 'rootfs/etc/hostname'), 'utf8')).toBe('web\n');
    expect(readFileSync(join(dir, 'rootfs/etc/resolv.conf'), 'utf8')).toBe(
      'nameserver 8.8.8.8\nnameserver 8.8.4.4\n',
    );
  });

  it('a symlinked /etc leads inside the root, never to the host (canary)', () => {
    const { dir, fd } = root();
    const canary = join(dir, 'canary');
    writeFileSync(canary, 'host canary\n');
    execFileSync('rm', ['-r', join(dir, 'rootfs/etc')]);
    // /etc -> the host folder holding the canary, by absolute path: resolves inside the root.
    symlinkSync(dir, join(dir, 'rootfs/etc'));
    mkdirSync(join(dir, 'rootfs', dir), { recursive: true });
    writeEtcFiles(fd, { hostname: 'x\n' });
    expect(readFileSync(canary, 'utf8')).toBe('host canary\n');
    expect(readFileSync(join(dir, 'rootfs', dir, 'hostname'), 'utf8')).toBe('x\n');
  });

  it('refuses a final symlink, a FIFO or a device node instead of opening it', () => {
    const { dir, fd } = root();
    const canary = join(dir, 'canary');
    writeFileSync(canary, 'host canary\n');
    symlinkSync(canary, join(dir, 'rootfs/etc/hosts'));
    execFileSync('mkfifo', [join(dir, 'rootfs/etc/hostname')]);
    execFileSync('mknod', [join(dir, 'rootfs/etc/resolv.conf'), 'c', '1', '3']); // /dev/null's numbers
    expect(() => writeEtcFiles(fd, { hosts: 'x' })).toThrow(NetworkError);
    expect(() => writeEtcFiles(fd, { hostname: 'x' })).toThrow(/not a regular file/);
    expect(() => writeEtcFiles(fd, { resolvConf: 'x' })).toThrow(/not a regular file/);
    expect(readFileSync(canary, 'utf8')).toBe('host canary\n');
  });

  it('parses --network', () => {
    expect(parseNetworkMode()).toEqual({ kind: 'bridge' });
    expect(parseNetworkMode('none')).toEqual({ kind: 'none' });
    expect(parseNetworkMode('host')).toEqual({ kind: 'host' });
    expect(parseNetworkMode('container:web')).toEqual({ kind: 'container', container: 'web' });
    expect(parseNetworkMode('n1')).toEqual({ kind: 'network', network: 'n1' });
    expect(() => parseNetworkMode('container:')).toThrow(NetworkError);
  });
});
