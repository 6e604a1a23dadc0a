// dockerd's network switches as corral's global flags (--iptables, --ip-forward, --ip-masq):
// refused when not booleans, kept by the data root for the commands after, and --ip-forward
// tried for real only inside a network namespace of the test's own (the host's forwarding is
// never touched: a test checks it stays off).
import { closeSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { corralBin, exec, must } from '@corral/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { Sandbox } from './helpers.js';

const s = new Sandbox();
const w = new Sandbox();
const world = join(w.root, '..', `${w.root.split('/').pop()}-world`);
const inWorld = (args: string[]) =>
  exec('nsenter', [`--net=${world}`, '--', process.execPath, corralBin, '--root', w.root, ...args]);
const ipForward = () => readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim();

afterAll(async () => {
  await s.teardown();
  // The world's containers and bridges: taken down inside it, then the namespace itself goes.
  await inWorld(['network', 'down']).catch(() => {});
  await exec('umount', [world]);
  await exec('rm', ['-f', world]);
  await w.teardown();
});

describe('corral --iptables / --ip-forward / --ip-masq', () => {
  it('refuses a switch that is not a boolean', async () => {
    const r = await s.corral(['--ip-masq=maybe', 'ps']);
    expect([r.status, r.stderr.trim()]).toEqual([
      125,
      'corral: invalid value "maybe" for --ip-masq: true or false',
    ]);
  });

  it('keeps --iptables=false with the data root for the commands after it', async () => {
    const off = await s.corral(['--iptables=false', 'run', '--rm', '-p', '127.0.0.1::80', 'busybox', 'true']);
    expect(off.status).toBe(125);
    expect(off.stderr).toContain('iptables is turned off in the engine configuration');
    expect(JSON.parse(readFileSync(join(s.root, 'network', 'settings.json'), 'utf8'))).toEqual({
      iptables: false,
    });
    // A command without the flag: still off.
    const again = await s.corral(['run', '--rm', '-p', '127.0.0.1::80', 'busybox', 'true']);
    expect(again.status).toBe(125);
    // Turned on again: the port is published.
    const on = await s.corral(['--iptables', 'run', '--rm', '-p', '127.0.0.1::80', 'busybox', 'true']);
    expect([on.status, on.stderr]).toEqual([0, '']);
  });

  it('--ip-forward turns forwarding on in the namespace the engine runs in, never elsewhere', async () => {
    expect(ipForward()).toBe('0');
    closeSync(openSync(world, 'w'));
    await must('unshare', [`--net=${world}`, 'true']); // a namespace of the test's, pinned
    const before = await exec('nsenter', [`--net=${world}`, '--', 'cat', '/proc/sys/net/ipv4/ip_forward']);
    expect(before.stdout.trim()).toBe('0');
    const r = await inWorld(['--ip-forward', 'run', '--rm', 'busybox', 'sh', '-c', 'ls /sys/class/net']);
    expect([r.status, r.stderr]).toEqual([0, '']);
    expect(r.stdout.trim().split('\n')).toEqual(['eth0', 'lo']);
    const after = await exec('nsenter', [`--net=${world}`, '--', 'cat', '/proc/sys/net/ipv4/ip_forward']);
    expect(after.stdout.trim()).toBe('1');
    expect(ipForward()).toBe('0');
  });
});
