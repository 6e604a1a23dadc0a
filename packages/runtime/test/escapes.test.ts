// Escapes tried for real, as an attacker inside a container would, against canary files made
// here. Each test fails if the defence it names goes away (see the README's table).
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { until } from '@corral/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type OciSpec, Runtime } from '../dist/index.js';
import { addNodeLibraries, bundleMaker, busyboxRootfs, collect, tempDir } from './helpers.js';

const tmp = tempDir('escapes');
chmodSync(tmp, 0o755);
const rootfs = join(tmp, 'rootfs');
const canaryDir = join(tmp, 'canary');
const canary = join(canaryDir, 'secret');
/** A copy of node for the runtime to run, so that an attack that works breaks only the copy. */
const nodeCopy = join(tmp, 'node-bin', 'node');
const rt = new Runtime({ root: join(tmp, 'state'), node: nodeCopy });
const bundle = bundleMaker(tmp, rootfs);
const run = { stdio: ['ignore', 'pipe', 'pipe'] } as const;

beforeAll(() => {
  busyboxRootfs(rootfs);
  addNodeLibraries(rootfs);
  mkdirSync(canaryDir, { mode: 0o755 });
  writeFileSync(canary, 'CANARY-ESCAPES\n', { mode: 0o644 });
  mkdirSync(dirname(nodeCopy));
  copyFileSync(process.execPath, nodeCopy);
  chmodSync(nodeCopy, 0o755);
});
afterAll(async () => {
  for (const id of rt.list()) await rt.delete(id, { force: true });
  rmSync(tmp, { recursive: true, force: true });
});

const withInit = (s: OciSpec) => {
  s.annotations = { 'run.corral.init': 'true' };
};

async function runToEnd(id: string, b: string): Promise<{ code: number; out: string; err: string }> {
  const c = await rt.create(id, b, run);
  const out = collect(c.stdout);
  const err = collect(c.stderr);
  await rt.start(id);
  const code = await c.wait();
  await rt.delete(id);
  return { code, out: out(), err: err() };
}

describe('Node threads never reach the host (CVE-2016-9962 class)', () => {
  it('--init: every task of PID 1 has the container root, even for root with CAP_SYS_PTRACE', async () => {
    const script = `cat /proc/1/task/*/root${canary}; for t in /proc/1/task/*; do readlink $t/root; done; echo x >> /proc/1/exe`;
    // No capabilities in the spec: root keeps all of them, CAP_SYS_PTRACE included.
    const { out, err } = await runToEnd('init-threads', bundle(['sh', '-c', script], withInit));
    expect(out).not.toContain('CANARY');
    const roots = out.trim().split('\n');
    expect(roots.length).toBeGreaterThan(1); // the supervisor is a Node process: threads exist
    expect(new Set(roots)).toEqual(new Set(['/']));
    // The supervisor's binary is the host's loader, seen through a read-only view.
    expect(err).toContain('Read-only file system');
  });

  it('--init as a user: the supervisor holds nothing of the host', async () => {
    const b = bundle(['sh', '-c', `cat /proc/1/task/*/root${canary} /proc/1/fd/*/*; ls /proc/1/fd`], (s) => {
      withInit(s);
      s.process.user = { uid: 1000, gid: 1000 };
    });
    const { out } = await runToEnd('init-user', b);
    expect(out).not.toContain('CANARY');
  });

  it("exec: no task visible inside has the host root while programs are exec'd", async () => {
    // A watcher inside looks at every task's root, all the time, as root with all capabilities.
    const watch = `while :; do for t in /proc/[0-9]*/task/*; do r=$(readlink $t/root); [ -n "$r" ] && [ "$r" != / ] && echo "$t $r" >> /seen; cat $t/root${canary} >> /seen 2>/dev/null; done; done`;
    const c = await rt.create('exec-watch', bundle(['sh', '-c', `touch /seen; ${watch}`]), run);
    await rt.start('exec-watch');
    for (let i = 0; i < 8; i++) {
      const e = await rt.exec(
        'exec-watch',
        { args: ['sh', '-c', 'sleep 0.05'], env: ['PATH=/bin'], cwd: '/', user: { uid: 0, gid: 0 } },
        { stdio: 'ignore' },
      );
      expect(await e.wait()).toBe(0);
    }
    const seen = await rt.exec(
      'exec-watch',
      { args: ['cat', '/seen'], env: ['PATH=/bin'], cwd: '/', user: { uid: 0, gid: 0 } },
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const out = collect(seen.stdout);
    expect(await seen.wait()).toBe(0);
    expect(out()).toBe('');
    await rt.delete('exec-watch', { force: true });
    await c.wait();
  });

  it('a process of the container user cannot reach a parked init (it is never dumpable)', async () => {
    const b = bundle(['true'], (s) => {
      s.process.user = { uid: 1000, gid: 1000 };
    });
    const c = await rt.create('parked', b, run);
    // The init has become uid 1000 and waits on the exec fifo: as uid 1000, try its root.
    const r = spawnSync('/bin/busybox', ['cat', `/proc/${c.pid}/root${canary}`], {
      uid: 1000,
      gid: 1000,
      encoding: 'utf8',
    });
    expect(r.stdout).not.toContain('CANARY');
    expect(r.stderr).toMatch(/Permission denied/);
    await rt.delete('parked', { force: true });
    await c.wait();
  });
});

describe('the runtime binary is out of reach (CVE-2019-5736 class)', () => {
  // A program `#!/proc/self/exe` makes the kernel run the binary of the process that execs it:
  // the container then runs our node, and writes to it through /proc/self/exe.
  const payload = (result: string) =>
    [
      '#!/proc/self/exe',
      "const fs = require('fs');",
      "const { spawn } = require('child_process');",
      `let now; try { fs.closeSync(fs.openSync('/proc/self/exe', 'r+')); now = 'written'; } catch (e) { now = e.code; }`,
      `fs.writeFileSync('${result}', now + '\\n');`,
      // The classic shape: keep an O_PATH handle, let the binary stop running, then write.
      "const fd = fs.openSync('/proc/self/exe', 0o10000000);",
      `spawn('/bin/sh', ['-c', 'sleep 0.5; echo pwned > /proc/self/fd/3; echo $? >> ${result}'], { stdio: ['ignore', 'ignore', 'ignore', fd], detached: true }).unref();`,
    ].join('\n');
  const original = () => readFileSync(process.execPath).subarray(0, 4096);
  const current = () => readFileSync(nodeCopy).subarray(0, 4096);

  it("exec: the helper's node cannot be written, now or after it ends", async () => {
    writeFileSync(join(rootfs, 'evil-exec'), payload('/result-exec'), { mode: 0o755 });
    const c = await rt.create('exe-exec', bundle(['sleep', '100']), run);
    await rt.start('exe-exec');
    const e = await rt.exec(
      'exe-exec',
      { args: ['/evil-exec'], env: ['PATH=/bin'], cwd: '/', user: { uid: 0, gid: 0 } },
      { stdio: 'ignore' },
    );
    expect(await e.wait()).toBe(0);
    await new Promise((r) => setTimeout(r, 1500));
    const result = readFileSync(join(rootfs, 'result-exec'), 'utf8').trim().split('\n');
    expect(result[0]).toBe('EROFS');
    expect(result[1]).not.toBe('0'); // the late write failed too
    expect(current().equals(original())).toBe(true);
    await rt.delete('exe-exec', { force: true });
    await c.wait();
  });

  it("init: the container init's node cannot be written", async () => {
    writeFileSync(join(rootfs, 'evil-init'), payload('/result-init'), { mode: 0o755 });
    const c = await rt.create('exe-init', bundle(['/evil-init']), run);
    await rt.start('exe-init');
    await c.wait();
    const result = readFileSync(join(rootfs, 'result-init'), 'utf8').trim().split('\n');
    expect(result[0]).toBe('EROFS');
    expect(current().equals(original())).toBe(true);
    await rt.delete('exe-init');
  });
});

describe('exec gets what PID 1 got', () => {
  it('no_new_privs, capabilities and seccomp of the container, whatever exec asks', async () => {
    const status = "grep -E '^(NoNewPrivs|Seccomp|CapEff|CapPrm|CapBnd)' /proc/self/status";
    const caps = ['CAP_CHOWN', 'CAP_KILL', 'CAP_SETUID', 'CAP_SETGID'];
    const c = await rt.create(
      'exec-privs',
      bundle(['sh', '-c', `${status} > /pid1; sleep 100`], (s) => {
        s.process.noNewPrivileges = true;
        s.process.capabilities = { bounding: caps, effective: caps, permitted: caps };
        s.linux!.seccomp = {
          defaultAction: 'SCMP_ACT_ALLOW',
          syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO' }],
        };
      }),
      run,
    );
    await rt.start('exec-privs');
    const e = await rt.exec(
      'exec-privs',
      {
        args: ['sh', '-c', `${status}; mkdir /made 2>&1`],
        env: ['PATH=/bin'],
        cwd: '/',
        user: { uid: 0, gid: 0 },
      },
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const out = collect(e.stdout);
    await e.wait();
    // PID 1 writes its status on its own time (the exec may end first on a busy machine).
    const written = () => {
      try {
        return readFileSync(join(rootfs, 'pid1'), 'utf8');
      } catch {
        return ''; // not made yet
      }
    };
    await until(() => written().includes('CapBnd'), "PID 1's status in /pid1");
    const pid1 = written();
    expect(pid1).toContain('NoNewPrivs:\t1');
    expect(out()).toContain(pid1);
    expect(out()).toContain('Operation not permitted');
    await rt.delete('exec-privs', { force: true });
    await c.wait();
  });
});
