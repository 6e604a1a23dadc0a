// run's fast path (src/fast-run.ts): the container built by a vfork child of the runtime, with
// no Node init. It must be taken where it can be, build the very container the init builds
// (every defence the init sets up: namespaces, root, masked and read-only paths, user,
// capabilities, no_new_privs, seccomp, cgroup and limits), keep the runtime's own node out of
// the container's reach (CVE-2019-5736 class, against a copy of node), report failures as the
// other path does and leave nothing behind. The runtime process stays whole after many.
import { spawn } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { plantSelfExeAttack, until } from '@corral/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type OciSpec, Runtime, runFast } from '../dist/index.js';
import { BIN, corralRuntime, runCommand } from './cli-helpers.js';
import { addNodeLibraries, bundleMaker, busyboxRootfs, tempDir } from './helpers.js';

const tmp = tempDir('fast-run');
chmodSync(tmp, 0o755);
const rootfs = join(tmp, 'rootfs');
const state = join(tmp, 'state');
const cr = corralRuntime(tmp, state);
const bundle = bundleMaker(tmp, rootfs);
const log = join(tmp, 'log');
/** A copy of node for the runtime to run, so that an attack that works breaks only the copy. */
const nodeCopy = join(tmp, 'node-bin', 'node');
const cgroupName = `corral-fast-run-${process.pid}`;

beforeAll(() => {
  busyboxRootfs(rootfs);
  addNodeLibraries(rootfs);
  mkdirSync(dirname(nodeCopy));
  copyFileSync(process.execPath, nodeCopy);
  chmodSync(nodeCopy, 0o755);
});
afterAll(async () => {
  const rt = new Runtime({ root: state });
  for (const id of rt.list()) await rt.delete(id, { force: true });
  rmSync(tmp, { recursive: true, force: true });
});

/** A container as Docker makes one: a user, a few capabilities, no_new_privs, seccomp, limits. */
const hardened = (s: OciSpec) => {
  const caps = ['CAP_CHOWN', 'CAP_KILL', 'CAP_NET_BIND_SERVICE', 'CAP_SETUID', 'CAP_SETGID'];
  s.process.user = { uid: 1000, gid: 1000, additionalGids: [10, 20], umask: 0o027 };
  s.process.capabilities = { bounding: caps, effective: caps, permitted: caps };
  s.process.noNewPrivileges = true;
  s.process.rlimits = [{ type: 'RLIMIT_NOFILE', soft: 1000, hard: 1000 }];
  s.process.cwd = '/tmp/work';
  s.process.oomScoreAdj = 500;
  s.root.readonly = true;
  s.hostname = 'fast';
  s.mounts!.push(
    { destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: ['mode=1777'] },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
    { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'ro'] },
  );
  s.linux!.namespaces!.push({ type: 'network' }, { type: 'cgroup' });
  s.linux!.maskedPaths = ['/proc/keys', '/sys/firmware'];
  s.linux!.readonlyPaths = ['/proc/sys', '/proc/sysrq-trigger'];
  s.linux!.cgroupsPath = cgroupName;
  s.linux!.resources = { pids: { limit: 50 }, memory: { limit: 64 * 1024 * 1024 } };
  s.linux!.seccomp = {
    defaultAction: 'SCMP_ACT_ALLOW',
    // execveat too: the fast path's child must need no more than execve to start the program.
    syscalls: [{ names: ['unshare', 'mount', 'keyctl', 'execveat'], action: 'SCMP_ACT_ERRNO', errnoRet: 1 }],
  };
};

/** What the container shows of itself: everything the init sets up, and attacks on it. */
const PROBE = [
  'hostname',
  'id',
  'umask',
  'pwd',
  'ulimit -n',
  'cat /proc/self/oom_score_adj',
  'grep -E "^(Cap|NoNewPrivs|Seccomp)" /proc/self/status',
  'cut -d" " -f5,9 /proc/self/mountinfo | sort',
  'cat /proc/self/cgroup',
  // Counted by the shell itself: `ls /proc | grep -c` raced grep's fork (2 or 3 on CI).
  'set -- /proc/[0-9]*; echo $#',
  'wc -c < /proc/keys',
  'echo x > /proc/sysrq-trigger || echo sysrq refused',
  'touch /evil || echo root read-only',
  'unshare -m true || echo unshare refused',
  'mount -t tmpfs none /tmp/work || echo mount refused',
  'cat /sys/fs/cgroup/pids/pids.max 2>&1 | head -1',
  'ip link 2>/dev/null | grep -c "^[0-9]"',
  'readlink /proc/1/exe',
].join('; echo --; ');

describe('run takes the fast path where it can', () => {
  it('and builds the same container as the init does, every defence in place', () => {
    const b = bundle(['sh', '-c', `(${PROBE}) 2>&1`], hardened);
    mkdirSync(join(rootfs, 'tmp', 'work'), { recursive: true });
    const fast = cr(['--debug', '--log', log, 'run', '--bundle', b, 'probe-fast']);
    const slow = cr(['--debug', '--log', log, 'run', '--bundle', b, 'probe-init'], {
      env: { ...process.env, CORRAL_RUNTIME_FAST: '0' },
    });
    expect(fast.status).toBe(0);
    expect(slow.status).toBe(0);
    const lines = readFileSync(log, 'utf8');
    expect(lines).toContain('run probe-fast from');
    expect(lines).toMatch(/probe-fast.*fast path \(vfork child, no Node init\)/);
    expect(lines).toContain('run probe-init: not on the fast path: turned off by CORRAL_RUNTIME_FAST=0');
    expect(fast.stdout).toBe(slow.stdout);
    const out = fast.stdout.split('--\n').map((s) => s.trim());
    expect(out.slice(0, 6)).toEqual([
      'fast',
      'uid=1000 gid=1000 groups=10,20',
      '0027',
      '/tmp/work',
      '1000',
      '500',
    ]);
    // CHOWN, KILL, SETGID, SETUID, NET_BIND_SERVICE: bits 0, 5, 6, 7, 10; a user's exec
    // keeps none of them effective.
    expect(out[6]).toContain('CapBnd:\t00000000000004e1');
    expect(out[6]).toContain('CapEff:\t0000000000000000');
    expect(out[6]).toMatch(/NoNewPrivs:\t1/);
    expect(out[6]).toMatch(/Seccomp:\t2/);
    expect(out[8]).toMatch(/^\d+:pids:\/$/m); // a cgroup namespace of its own
    expect(out[9]).toBe('1'); // the shell alone: no Node init or thread in the PID namespace
    expect(out[10]).toBe('0'); // masked
    expect(out.slice(11, 15).map((o) => o.split('\n').at(-1))).toEqual([
      'sysrq refused',
      'root read-only',
      'unshare refused',
      'mount refused',
    ]);
    expect(out[15]).toBe('50');
    expect(out[16]).toBe('1'); // loopback only: a network namespace of its own
    expect(out[17]).toBe('/bin/busybox');
    // Nothing left: state, cgroup.
    expect(readdirSync(state)).toEqual([]);
    expect(existsSync(`/sys/fs/cgroup/pids/${cgroupName}`)).toBe(false);
  });

  it('not with a terminal, hooks, -d, --no-pivot or --init, which keep to the init', () => {
    const b = bundle(['true'], (s) => {
      s.hooks = { prestart: [{ path: '/bin/true' }] };
    });
    const r = cr(['--debug', '--log', log, 'run', '--bundle', b, 'with-hooks']);
    expect(r.status).toBe(0);
    expect(readFileSync(log, 'utf8')).toContain('run with-hooks: not on the fast path: hooks');
  });
});

describe('the fast path reports as the init does', () => {
  it("exits with the program's status, and forwards signals to it", async () => {
    expect(cr(['run', '--bundle', bundle(['sh', '-c', 'exit 3']), 'code']).status).toBe(3);
    const b = bundle(['sh', '-c', 'trap "exit 7" TERM; echo up; sleep 100 & wait']);
    const out = join(tmp, 'signal.out');
    const fd = openSync(out, 'w');
    const child = spawn(process.execPath, [BIN, '--root', state, 'run', '--bundle', b, 'signal'], {
      stdio: ['ignore', fd, 'inherit'],
    });
    closeSync(fd);
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    await until(() => readFileSync(out, 'utf8') === 'up\n', 'the program to start', 20_000);
    child.kill('SIGTERM');
    expect(await exited).toBe(7);
    expect(readdirSync(state)).toEqual([]);
  });

  it('a missing program, a bad working directory or an impossible limit: an error, nothing left', () => {
    const missing = cr(['run', '--bundle', bundle(['/no/such']), 'missing']);
    expect(missing.status).not.toBe(0);
    expect(missing.stderr).toMatch(/run failed: exec: .*\/no\/such.*: no such file or directory/);
    const cwd = cr([
      'run',
      '--bundle',
      bundle(['true'], (s) => {
        s.process.cwd = '/bin/busybox/x';
      }),
      'cwd',
    ]);
    expect(cwd.status).not.toBe(0);
    expect(cwd.stderr).toMatch(/run failed: .*\/bin\/busybox\/x/);
    const limit = cr([
      'run',
      '--bundle',
      bundle(['true'], (s) => {
        s.process.rlimits = [{ type: 'RLIMIT_NOFILE', soft: 1_000_000, hard: 1_000_000 }];
      }),
      'limit',
    ]);
    expect(limit.status).not.toBe(0);
    expect(limit.stderr).toMatch(/RLIMIT_NOFILE/);
    expect(readdirSync(state)).toEqual([]);
  });
});

describe("the runtime's node is out of reach (CVE-2019-5736 class)", () => {
  // The vfork child shares the runtime's memory, so until it execs, /proc/self/exe is the
  // runtime's node: a program `#!/proc/self/exe`, or a link to it, would run that node inside
  // and write to it. The child execs a sealed trampoline first, which refuses to run again.
  const original = () => readFileSync(process.execPath).subarray(0, 4096);
  const current = () => readFileSync(nodeCopy).subarray(0, 4096);
  const runWithCopy = (args: string[], id: string) =>
    runCommand(tmp, [nodeCopy, BIN, '--root', state, 'run', '--bundle', bundle(args), id]);

  it('neither a #!/proc/self/exe program nor a link to /proc/self/exe reaches it', () => {
    const attack = plantSelfExeAttack(rootfs);
    const [script, link] = attack.commands.map((args, i) => runWithCopy(args, `evil${i}`));
    // The trampoline, entered a second time, exits 126 before anything of the payload runs.
    expect([script.status, link.status]).toEqual([126, 126]);
    expect(attack.nodeRanInside()).toBe(false);
    expect(current().equals(original())).toBe(true);
    expect(readdirSync(state)).toEqual([]);
  });
});

describe('the runtime process stays whole', () => {
  it('after 200 containers from one process: every child reaped, no fd left open', async () => {
    const b = bundle(['sh', '-c', 'test $$ = 1']);
    const fds = () => readdirSync('/proc/self/fd').length;
    const devnull = openSync('/dev/null', 'w');
    let before = 0;
    try {
      for (let i = 0; i < 200; i++) {
        // After the first, which opens what lasts (the trampoline's memfd).
        if (i === 1) before = fds();
        const r = await runFast(state, `many${i}`, b, { stdio: [devnull, devnull, devnull] });
        await until(() => r.poll() !== null, 'the program to end', 10_000);
        expect(r.poll()).toBe(0);
        await new Runtime({ root: state }).delete(`many${i}`);
      }
    } finally {
      closeSync(devnull);
    }
    expect(fds()).toBeLessThanOrEqual(before);
    // This process still runs JS, throws, collects garbage and does async I/O.
    expect(() => JSON.parse('{')).toThrow();
    expect(await new Promise((r) => setTimeout(() => r('timer'), 1))).toBe('timer');
    const { readFile } = await import('node:fs/promises');
    expect(await readFile(join(b, 'config.json'), 'utf8')).toContain('test');
  });
});
