// Docker's default seccomp profile in a real container, and profiles from a file.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { syscallNumber } from '@corral/sys';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Sandbox } from './helpers.js';

const s = new Sandbox();
afterAll(() => s.teardown());

describe("Docker's default seccomp profile", () => {
  it('refuses unshare -U -r (a full capability set in a child user namespace), as Docker does', async () => {
    // The attack of CVE-2022-0185 / CVE-2024-1086: become root of a new user namespace, then
    // reach kernel code (fsconfig, nf_tables) that only a namespace's root may call.
    const r = await s.corral([
      'run',
      '--rm',
      'busybox',
      'unshare',
      '-U',
      '-r',
      'sh',
      '-c',
      'grep CapEff /proc/self/status',
    ]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('Operation not permitted');
    expect(r.out).not.toMatch(/CapEff/);
    const mount = await s.corral(['run', '--rm', 'busybox', 'unshare', '-m', 'true']);
    expect(mount.stderr).toContain('Operation not permitted');
  });

  it('--cap-add SYS_ADMIN turns unshare back on, as in Docker', async () => {
    const r = await s.corral([
      'run',
      '--rm',
      '--cap-add',
      'SYS_ADMIN',
      'busybox',
      'unshare',
      '-U',
      '-r',
      'id',
      '-u',
    ]);
    expect(r.stderr).toBe('');
    expect(r.out).toBe('0');
  });

  it('lets ordinary programs run: fork, pipes, sockets, the listed personalities', async () => {
    const port = 20000 + (process.pid % 20000);
    const script = [
      '(echo child) | cat',
      // A server and a client over loopback. busybox httpd and wget, not nc: an nc listener whose
      // stdin is /dev/null (a background job) sometimes exits on that EOF before printing what
      // it was sent (seen under load, 2 runs in 60).
      `mkdir /tmp/www && echo hi > /tmp/www/f && httpd -f -p 127.0.0.1:${port} -h /tmp/www & p=$!`,
      `for i in $(seq 300); do netstat -ltn | grep -q ":${port} " && break; sleep 0.1; done`,
      `wget -qO- http://127.0.0.1:${port}/f; kill $p; wait $p 2>/dev/null`,
      'linux32 uname -m',
      'linux64 uname -m',
    ].join('; ');
    const r = await s.corral(['run', '--rm', 'busybox', 'sh', '-c', script]);
    expect(r.stderr).toBe('');
    expect(r.out.split('\n')).toEqual([
      'child',
      'hi',
      expect.stringMatching(/^(i686|armv8l)$/),
      expect.stringMatching(/^(x86_64|aarch64)$/),
    ]);
  });

  describe('clone (a static probe run with --rootfs)', () => {
    let rootfs = '';
    beforeAll(() => {
      rootfs = join(s.root, 'probe-rootfs');
      for (const d of ['proc', 'dev', 'sys', 'etc', 'tmp']) mkdirSync(join(rootfs, d), { recursive: true });
      execFileSync('gcc', [
        '-static',
        '-O2',
        '-o',
        join(rootfs, 'probe'),
        join(__dirname, '../../../packages/engine/test/fixtures/seccomp-probe.c'),
      ]);
    });

    it('denies clone with CLONE_NEWUSER while a plain fork works', async () => {
      const clone = syscallNumber('clone');
      const r = await s.corral([
        'run',
        '--rm',
        '--rootfs',
        rootfs,
        '/probe',
        `fork=${clone},17`,
        `newuser=${clone},${0x10000000 | 17}`,
        `newpid=${clone},${0x20000000 | 17}`,
      ]);
      expect(r.stderr).toBe('');
      expect(r.out.split('\n')).toEqual(['fork ok', 'newuser errno 1', 'newpid errno 1']);
    });
  });
});

describe('--security-opt seccomp=FILE', () => {
  const file = (name: string, profile: unknown) => {
    const path = join(s.root, name);
    writeFileSync(path, typeof profile === 'string' ? profile : JSON.stringify(profile));
    return path;
  };

  it("takes a profile in Docker's format", async () => {
    const path = file('no-mkdir.json', {
      defaultAction: 'SCMP_ACT_ALLOW',
      syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet: 13 }],
    });
    const r = await s.corral(['run', '--rm', '--security-opt', `seccomp=${path}`, 'busybox', 'mkdir', '/x']);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('Permission denied');
  });

  it("loads Debian's containers-common profile unchanged", async () => {
    const r = await s.corral([
      'run',
      '--rm',
      '--security-opt',
      'seccomp=/usr/share/containers/seccomp.json',
      'busybox',
      'sh',
      '-c',
      'grep Seccomp: /proc/self/status; swapoff /x',
    ]);
    expect(r.out).toMatch(/Seccomp:\s*2/);
    expect(r.stderr).toContain('Operation not permitted');
  });

  it('refuses a malformed profile at create with a clear error, leaving nothing behind', async () => {
    const path = file('bad.json', {
      defaultAction: 'SCMP_ACT_ERRNO',
      syscalls: [
        { names: ['read'], action: 'SCMP_ACT_ALLOW', args: [{ index: 9, value: 1, op: 'SCMP_CMP_EQ' }] },
      ],
    });
    for (const args of [
      ['run', '--rm', '--name', 'badprofile', '--security-opt', `seccomp=${path}`, 'busybox', 'true'],
      ['create', '--security-opt', `seccomp=${file('bad2.json', '{"defaultAction": ')}`, 'busybox', 'true'],
      ['create', '--security-opt', `seccomp=${join(s.root, 'absent.json')}`, 'busybox', 'true'],
    ]) {
      const r = await s.corral(args);
      expect(r.status).toBe(125);
      expect(r.stderr).toMatch(/seccomp profile \/\S+: /);
    }
    expect(
      (await s.corral(['run', '--rm', '--security-opt', `seccomp=${path}`, 'busybox', 'true'])).stderr,
    ).toContain('syscalls[0].args[0].index');
    expect((await s.corral(['ps', '-a', '-q'])).out).toBe('');
    expect(readdirSync(join(s.root, 'containers'))).toEqual([]);
    expect(readdirSync(join(s.root, 'names'))).toEqual([]);
  });
});
