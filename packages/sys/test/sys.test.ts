import { spawn, spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Cleanups } from '@corral/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import {
  close,
  FADV,
  FSCONFIG,
  fsconfig,
  fsmount,
  fsopen,
  isMountPoint,
  MOVE_MOUNT,
  MS,
  makedev,
  mknod,
  mount,
  mountPoints,
  moveMount,
  parseSignal,
  pidfdOpen,
  pidfdPoll,
  pidfdSendSignal,
  prlimit,
  procStartTime,
  RLIMIT,
  rawFadvise,
  rawFgetxattr,
  rawFremovexattr,
  rawFsetxattr,
  readMountInfo,
  S_IF,
  SyscallError,
  signalName,
  startWriteback,
  syncfsAsync,
  umount2,
} from '../src/index.js';

// Temp folders are unmounted (what a test mounted on them) and removed after each test.
const cleanup = new Cleanups();
const tmp = () => cleanup.tempDir('sys');
afterEach(() => cleanup.run());

describe('SyscallError', () => {
  it('names the call, the errno and the arguments', () => {
    let err: unknown;
    try {
      mount('none', '/nonexistent/corral-test', 'tmpfs', 0);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SyscallError);
    const e = err as SyscallError;
    expect(e.syscall).toBe('mount');
    expect(e.code).toBe('ENOENT');
    expect(e.errno).toBe(2);
    expect(e.message).toBe('mount(none, /nonexistent/corral-test): ENOENT (2)');
  });
});

describe('mounts', () => {
  it('mounts and unmounts a tmpfs with mount(2)', () => {
    const d = tmp();
    mount('corral-test', d, 'tmpfs', MS.NOSUID | MS.NODEV, 'size=1m');
    expect(isMountPoint(d)).toBe(true);
    writeFileSync(join(d, 'f'), 'x');
    umount2(d);
    expect(isMountPoint(d)).toBe(false);
  });

  it('lists mount points as the mount table names them, spaces and tabs unescaped', () => {
    const d = join(tmp(), 'a dir\twith blanks');
    mkdirSync(d);
    mount('corral-test', d, 'tmpfs', MS.NOSUID | MS.NODEV, 'size=1m');
    const points = mountPoints();
    expect(points.has(d)).toBe(true);
    expect(isMountPoint(d)).toBe(true);
    // The same set as the full parse gives.
    expect([...points].sort()).toEqual([...new Set(readMountInfo().map((m) => m.mountPoint))].sort());
    umount2(d);
    expect(mountPoints().has(d)).toBe(false);
  });

  it('mounts with the new mount API (fsopen, fsconfig, fsmount, move_mount)', () => {
    const d = tmp();
    const fsfd = fsopen('tmpfs', 1);
    fsconfig(fsfd, FSCONFIG.SET_STRING, 'size', '2m');
    fsconfig(fsfd, FSCONFIG.CMD_CREATE, null);
    const mfd = fsmount(fsfd, 1, 0);
    moveMount(mfd, '', -100, d, MOVE_MOUNT.F_EMPTY_PATH);
    close(mfd);
    close(fsfd);
    expect(isMountPoint(d)).toBe(true);
    umount2(d);
  });

  it('rejects a bad fsconfig key with a typed error', () => {
    const fsfd = fsopen('tmpfs', 1);
    try {
      expect(() => fsconfig(fsfd, FSCONFIG.SET_STRING, 'no-such-option', 'x')).toThrow(SyscallError);
    } finally {
      close(fsfd);
    }
  });

  it('makes device nodes with mknod', () => {
    const d = tmp();
    mknod(join(d, 'null'), S_IF.CHR | 0o666, makedev(1, 3));
    const st = statSync(join(d, 'null'));
    expect(st.isCharacterDevice()).toBe(true);
    expect(st.rdev).toBe(Number(makedev(1, 3)));
    expect(readFileSync(join(d, 'null'), 'utf8')).toBe('');
  });
});

describe('syncing files off the main thread', () => {
  it('syncs a filesystem and starts a writeback on a worker thread, and says which fd was bad', async () => {
    const file = join(tmp(), 'f');
    writeFileSync(file, Buffer.alloc(4 * 1024 * 1024, 1));
    const fd = openSync(file, 'r+');
    try {
      expect(await startWriteback(fd, 0, 4 * 1024 * 1024)).toBe(true);
      await syncfsAsync(fd);
    } finally {
      closeSync(fd);
    }
    // No such fd: the writeback hint says false, syncfs names the call and EBADF.
    expect(await startWriteback(-1, 0, 1)).toBe(false);
    const err = await syncfsAsync(-1).catch((e) => e);
    expect(err).toBeInstanceOf(SyscallError);
    expect(err.message).toMatch(/^syncfs\(.*EBADF/);
  });
});

describe('raw file calls by fd', () => {
  it('removes an xattr by fd (fremovexattr), and drops the cached pages of a file (fadvise)', () => {
    const file = join(tmp(), 'f');
    writeFileSync(file, 'data');
    const fd = openSync(file, 'r+');
    const name = Buffer.from('user.corral\0');
    try {
      expect(rawFsetxattr(fd, name, Buffer.from('v'), 0)).toBe(0);
      expect(rawFgetxattr(fd, name, null)).toBe(1);
      expect(rawFremovexattr(fd, name)).toBe(0);
      expect(rawFgetxattr(fd, name, null)).toBe(-61); // ENODATA
      expect(rawFremovexattr(fd, name)).toBe(-61);
      expect(rawFadvise(fd, 0, 0, FADV.DONTNEED)).toBe(0);
      expect(readFileSync(file, 'utf8')).toBe('data');
    } finally {
      closeSync(fd);
    }
    expect(rawFadvise(fd, 0, 0, FADV.DONTNEED)).toBe(-9); // EBADF: posix_fadvise returns it
  });
});

describe('processes', () => {
  it('signals a child through a pidfd and sees it end', async () => {
    const child = spawn('sleep', ['30']);
    const exited = new Promise<number | null>((r) =>
      child.on('exit', (_c, s) => r(s === 'SIGTERM' ? 15 : null)),
    );
    const fd = pidfdOpen(child.pid!);
    expect(procStartTime(child.pid!)).toBeGreaterThan(0);
    pidfdSendSignal(fd, parseSignal('TERM'));
    expect(await exited).toBe(15);
    close(fd);
    // Reaped: gone, which is null (not an exception).
    expect(procStartTime(child.pid!)).toBeNull();
  });

  it('polls a pidfd without blocking', () => {
    const child = spawn('sleep', ['30']);
    const fd = pidfdOpen(child.pid!);
    // WNOWAIT leaves the child for Node to reap; WNOHANG returns at once.
    expect(pidfdPoll(fd, 4 | 1 | 0x01000000)).toBeNull();
    child.kill('SIGKILL');
    close(fd);
  });

  it('unshares a UTS namespace in a child process and sets its hostname', () => {
    const script = `
      import { unshare, sethostname, CLONE } from '${join(__dirname, '../dist/index.js')}';
      import { hostname } from 'node:os';
      unshare(CLONE.NEWUTS);
      sethostname('corral-sys-test');
      console.log(hostname());`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('corral-sys-test');
  });

  it('reads and sets resource limits and reports EPERM above the hard limit', () => {
    const cur = prlimit(0, RLIMIT.NOFILE);
    expect(cur.hard).toBeGreaterThan(0);
    const child = spawn('sleep', ['30']);
    try {
      prlimit(child.pid!, RLIMIT.NOFILE, { soft: 64, hard: 128 });
      expect(prlimit(child.pid!, RLIMIT.NOFILE)).toEqual({ soft: 64, hard: 128 });
      expect(() => prlimit(child.pid!, RLIMIT.NOFILE, { soft: 64, hard: cur.hard * 1000 })).toThrow(/EPERM/);
    } finally {
      child.kill('SIGKILL');
    }
  });
});

describe('signals', () => {
  it('parses names, numbers and realtime signals', () => {
    expect(parseSignal('TERM')).toBe(15);
    expect(parseSignal('sigkill')).toBe(9);
    expect(parseSignal('10')).toBe(10);
    expect(parseSignal('RTMIN+2')).toBe(36);
    expect(signalName(15)).toBe('SIGTERM');
    expect(() => parseSignal('SIGFOO')).toThrow('invalid signal: SIGFOO');
    expect(() => parseSignal(0)).toThrow();
  });
});

describe('capabilities', () => {
  it('names, masks and the kernel limit', async () => {
    const { CAP, capabilityMask, lastCapability, parseCapability } = await import('../src/index.js');
    expect(parseCapability('CAP_SYS_ADMIN')).toBe(21);
    expect(parseCapability('net_raw')).toBe(CAP.NET_RAW);
    expect(() => parseCapability('CAP_NOPE')).toThrow('unknown capability: CAP_NOPE');
    expect(capabilityMask(['CHOWN', 'KILL'])).toBe((1n << 0n) | (1n << 5n));
    expect(lastCapability()).toBeGreaterThanOrEqual(37);
  });

  it('drops capabilities in a child process: capset and the bounding set', () => {
    const script = `
      import { capset, capabilityMask, dropBoundingCapability, CAP } from '${join(__dirname, '../dist/index.js')}';
      import { readFileSync } from 'node:fs';
      dropBoundingCapability(CAP.SYS_ADMIN);
      const keep = capabilityMask(['CHOWN', 'KILL']);
      capset({ effective: keep, permitted: keep, inheritable: 0n });
      console.log(readFileSync('/proc/self/status', 'utf8').split('\\n').filter((l) => /^Cap(Eff|Bnd)/.test(l)).join(' '));`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/CapEff:\s*0000000000000021/);
    // The child's bounding set is ours less CAP_SYS_ADMIN (21), which we (root) have.
    const bounding = (status: string) => BigInt(`0x${/CapBnd:\s*([0-9a-f]+)/.exec(status)![1]}`);
    const ours = bounding(readFileSync('/proc/self/status', 'utf8'));
    expect(ours & (1n << 21n)).not.toBe(0n);
    expect(bounding(r.stdout).toString(16)).toBe((ours & ~(1n << 21n)).toString(16));
  });
});

describe('seccomp', () => {
  it('compiles a filter that makes a named syscall fail with the given errno', () => {
    const script = `
      import { compileSeccomp, loadSeccompFilter, prctl, PR, SECCOMP_RET } from '${join(__dirname, '../dist/index.js')}';
      import { mkdirSync, rmdirSync } from 'node:fs';
      const name = process.arch === 'x64' ? 'mkdir' : 'mkdirat';
      prctl(PR.SET_NO_NEW_PRIVS, 1);
      loadSeccompFilter(compileSeccomp([{ names: [name], action: SECCOMP_RET.ERRNO, errno: 13 }], SECCOMP_RET.ALLOW));
      try { mkdirSync(process.argv[1]); rmdirSync(process.argv[1]); console.log('allowed'); } catch (e) { console.log(e.code); }`;
    const dir = join(tmp(), 'blocked');
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script, dir], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('EACCES');
  });

  it('refuses syscalls it has no number for', async () => {
    const { compileSeccomp, SECCOMP_RET } = await import('../src/index.js');
    expect(() =>
      compileSeccomp([{ names: ['no_such_call'], action: SECCOMP_RET.ERRNO }], SECCOMP_RET.ALLOW),
    ).toThrow('unknown syscall no_such_call');
  });
});
