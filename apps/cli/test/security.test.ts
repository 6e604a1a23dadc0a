import { afterAll, describe, expect, it } from 'vitest';
import { Sandbox } from './helpers.js';

const s = new Sandbox();
afterAll(() => s.teardown());

const capEff = async (args: string[]) => /CapEff:\s*([0-9a-f]+)/.exec((await s.corral(args)).out)?.[1];

describe('capabilities', () => {
  it("gives a container's root Docker's default set, and a non-root user none", async () => {
    const r = await s.corral(['run', '--rm', 'busybox', 'grep', 'Cap', '/proc/self/status']);
    expect(r.out).toMatch(/CapEff:\s*00000000a80425fb/);
    expect(r.out).toMatch(/CapBnd:\s*00000000a80425fb/);
    expect(
      await capEff(['run', '--rm', '-u', 'nobody', 'busybox', 'grep', 'CapEff', '/proc/self/status']),
    ).toBe('0000000000000000');
  });

  it('adds and drops capabilities, and the kernel enforces them', async () => {
    const denied = await s.corral([
      'run',
      '--rm',
      'busybox',
      'sh',
      '-c',
      'mkdir /m; mount -t tmpfs none /m && echo mounted',
    ]);
    expect(denied.out).not.toContain('mounted');
    const allowed = await s.corral([
      'run',
      '--rm',
      '--cap-add',
      'SYS_ADMIN',
      'busybox',
      'sh',
      '-c',
      'mkdir /m; mount -t tmpfs none /m && echo mounted',
    ]);
    expect(allowed.out).toBe('mounted');
    const noChown = await s.corral([
      'run',
      '--rm',
      '--cap-drop',
      'CHOWN',
      'busybox',
      'sh',
      '-c',
      'chown 1 /tmp || echo refused',
    ]);
    expect(noChown.out).toBe('refused');
    expect(
      await capEff(['run', '--rm', '--cap-drop', 'ALL', 'busybox', 'grep', 'CapEff', '/proc/self/status']),
    ).toBe('0000000000000000');
  });

  it('gives exec the container capabilities', async () => {
    await s.corral(['run', '-d', '--name', 'capped', '--cap-drop', 'ALL', 'busybox', 'sleep', '100']);
    expect(await capEff(['exec', 'capped', 'grep', 'CapEff', '/proc/self/status'])).toBe('0000000000000000');
    await s.corral(['rm', '-f', 'capped']);
  });

  it('refuses unknown capabilities and ones corral does not hold', async () => {
    const unknown = await s.corral(['run', '--rm', '--cap-add', 'NOPE', 'busybox', 'true']);
    expect(unknown.status).toBe(125);
    expect(unknown.stderr).toContain('unknown capability: "NOPE"');
    // These machines take CAP_SYS_RESOURCE from root (see DESIGN.md).
    const notHeld = await s.corral(['run', '--rm', '--cap-add', 'SYS_RESOURCE', 'busybox', 'true']);
    expect(notHeld.status).toBe(125);
    expect(notHeld.stderr).toContain('capability SYS_RESOURCE is not available');
  });
});

describe('device access (devices cgroup)', () => {
  it('denies devices outside the default list even to root, and --privileged allows them', async () => {
    // /dev/kmsg (c 1:11) is readable on the host but not in Docker's default device list.
    const script = 'mknod /tmp/kmsg c 1 11 && head -c 8 /tmp/kmsg >/dev/null && echo read || echo denied';
    expect((await s.corral(['run', '--rm', 'busybox', 'sh', '-c', script])).out).toBe('denied');
    expect((await s.corral(['run', '--rm', '--privileged', 'busybox', 'sh', '-c', script])).out).toBe('read');
    expect(
      (
        await s.corral([
          'run',
          '--rm',
          'busybox',
          'sh',
          '-c',
          'echo x > /dev/null && head -c 4 /dev/urandom | wc -c',
        ])
      ).out,
    ).toBe('4');
  });
});

describe('seccomp', () => {
  it('filters syscalls by default, for exec too, and not when unconfined', async () => {
    expect((await s.corral(['run', '--rm', 'busybox', 'grep', 'Seccomp:', '/proc/self/status'])).out).toMatch(
      /Seccomp:\s*2/,
    );
    // swapoff is denied by the profile: with the capability it would reach the kernel (ENOENT).
    const filtered = await s.corral([
      'run',
      '--rm',
      '--cap-add',
      'SYS_ADMIN',
      'busybox',
      'swapoff',
      '/nonexistent',
    ]);
    expect(filtered.stderr).toContain('Operation not permitted');
    const open = await s.corral([
      'run',
      '--rm',
      '--cap-add',
      'SYS_ADMIN',
      '--security-opt',
      'seccomp=unconfined',
      'busybox',
      'swapoff',
      '/nonexistent',
    ]);
    expect(open.stderr).toContain('No such file or directory');
    await s.corral(['run', '-d', '--name', 'filtered', '--cap-add', 'SYS_ADMIN', 'busybox', 'sleep', '100']);
    expect((await s.corral(['exec', 'filtered', 'swapoff', '/nonexistent'])).stderr).toContain(
      'Operation not permitted',
    );
    await s.corral(['rm', '-f', 'filtered']);
  });

  it('sets no_new_privs on request and refuses options it does not know', async () => {
    expect(
      (
        await s.corral([
          'run',
          '--rm',
          '--security-opt',
          'no-new-privileges',
          'busybox',
          'grep',
          'NoNewPrivs',
          '/proc/self/status',
        ])
      ).out,
    ).toMatch(/NoNewPrivs:\s*1/);
    const r = await s.corral(['run', '--rm', '--security-opt', 'apparmor=x', 'busybox', 'true']);
    expect(r.status).toBe(125);
    expect(r.stderr).toContain('unsupported --security-opt apparmor=x');
  });
});
