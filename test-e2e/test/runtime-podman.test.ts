// podman 4.3 (Debian's) drives corral-runtime as its OCI runtime (`podman --runtime`): conmon
// calls create, then start, state, exec, kill, pause, resume and delete, each a process of its
// own. podman keeps all its state in a temp folder (storage, run root, tmp dir, file events);
// corral-runtime's state goes there too (--runtime-flag root=...); containers get a cgroup
// parent beneath this test's own cgroup and conmon stays in ours (--cgroups no-conmon).
import { existsSync, promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { busyboxRootfs } from '@corral/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  exec,
  mountsUnder,
  must,
  prepareCgroupParent,
  requireProgram,
  tempRoot,
  uniqueName,
  unmountUnder,
} from './helpers.js';
import { onPty, PODMAN, PODMAN_RLIMITS, podmanGlobal } from './peers.js';

const RUNTIME = fileURLToPath(new URL('../../packages/runtime/bin/corral-runtime.cjs', import.meta.url));

let tmp = '';
let cgroups: ReturnType<typeof prepareCgroupParent> | undefined;

function global(): string[] {
  return podmanGlobal(tmp, [
    '--runtime',
    RUNTIME,
    '--runtime-flag',
    `root=${path.join(tmp, 'runtime')}`,
    '--runtime-flag',
    'log-format=json',
  ]);
}

const podman = (args: string[]) => must(PODMAN, [...global(), ...args]);

/** `podman run` flags every container here needs (DESIGN.md: the rlimits this root may set). */
function runFlags(): string[] {
  return [
    '--pull=never',
    '--network',
    'none',
    '--cgroups',
    'no-conmon',
    '--cgroup-parent',
    cgroups!.path,
    ...PODMAN_RLIMITS,
  ];
}

beforeAll(async () => {
  requireProgram(PODMAN, 'podman');
  tmp = await tempRoot('runtime-podman');
  cgroups = prepareCgroupParent(uniqueName('corral-rt-podman'));
  // A busybox image: Debian's busybox-static with its applet links, imported from a tar.
  const rootfs = path.join(tmp, 'rootfs');
  busyboxRootfs(rootfs, 'proc', 'sys', 'dev', 'etc', 'tmp');
  await must('tar', ['-C', rootfs, '-cf', path.join(tmp, 'busybox.tar'), '.']);
  await podman(['import', path.join(tmp, 'busybox.tar'), 'localhost/busybox:latest']);
});

afterAll(async () => {
  const problems: string[] = [];
  if (tmp) {
    if (existsSync(path.join(tmp, 'storage'))) {
      const r = await exec(PODMAN, [...global(), 'rm', '-af', '-t', '0']);
      if (r.status !== 0) problems.push(`podman rm: ${r.stderr}`);
      let reset = await exec(PODMAN, [...global(), 'system', 'reset', '-f']);
      // The `podman container cleanup` that conmon runs when a container ends may still be
      // writing tmp/events while reset removes it ("directory not empty"): reset again.
      for (let i = 0; reset.status !== 0 && i < 3; i++) {
        await new Promise((r) => setTimeout(r, 500));
        reset = await exec(PODMAN, [...global(), 'system', 'reset', '-f']);
      }
      if (reset.status !== 0) problems.push(`podman system reset: ${reset.stderr}`);
    }
    await unmountUnder(tmp).catch((e) => problems.push(String(e)));
    if (cgroups) problems.push(...cgroups.cleanup());
    if (!mountsUnder(tmp).length) await fs.rm(tmp, { recursive: true, force: true });
  }
  if (problems.length) throw new Error(`podman teardown: ${problems.join('\n')}`);
});

describe('podman --runtime corral-runtime', () => {
  it('runs a container to its end: run --rm busybox echo hi', async () => {
    const r = await podman(['run', '--rm', ...runFlags(), 'busybox', 'echo', 'hi']);
    expect(r.stdout).toBe('hi\n');
  });

  it('passes the exit status on', async () => {
    const r = await exec(PODMAN, [
      ...global(),
      'run',
      '--rm',
      ...runFlags(),
      'busybox',
      'sh',
      '-c',
      'exit 7',
    ]);
    expect(r.status).toBe(7);
  });

  it('a detached container: exec, logs, top, pause/unpause, stop', async () => {
    const script = 'echo started; trap "echo stopping; exit 0" TERM; while :; do sleep 0.2; done';
    const id = (await podman(['run', '-d', '--name', 'web', ...runFlags(), 'busybox', 'sh', '-c', script]))
      .out;
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    expect((await podman(['exec', 'web', 'sh', '-c', 'echo $((40 + 2)) $(hostname)'])).out).toBe(
      `42 ${id.slice(0, 12)}`,
    );
    expect((await exec(PODMAN, [...global(), 'exec', 'web', 'sh', '-c', 'exit 3'])).status).toBe(3);
    expect((await podman(['logs', 'web'])).out).toContain('started');
    const top = (await podman(['top', 'web', 'pid', 'args'])).out;
    expect(top).toMatch(/^\s*1\s+sh -c echo started/m);

    await podman(['pause', 'web']);
    expect((await podman(['inspect', '--format', '{{.State.Status}}', 'web'])).out).toBe('paused');
    const pid = Number((await podman(['inspect', '--format', '{{.State.Pid}}', 'web'])).out);
    expect(readFileSync(`/proc/${pid}/cgroup`, 'utf8')).toContain(cgroups!.path);
    await podman(['unpause', 'web']);
    expect((await podman(['inspect', '--format', '{{.State.Status}}', 'web'])).out).toBe('running');

    await podman(['stop', '-t', '10', 'web']);
    expect((await podman(['inspect', '--format', '{{.State.Status}} {{.State.ExitCode}}', 'web'])).out).toBe(
      'exited 0',
    );
    expect((await podman(['logs', 'web'])).out).toContain('stopping');
    await podman(['rm', 'web']);
  });

  it('-it gives the program a terminal (the test holds the pty podman runs on)', async () => {
    // The test's pty plays the user's terminal; conmon gets the container's pty master from
    // corral-runtime over --console-socket.
    const args = [
      ...global(),
      'run',
      '-it',
      '--rm',
      ...runFlags(),
      'busybox',
      'sh',
      '-c',
      'tty; [ -t 0 ] && echo stdin-tty; exit 4',
    ];
    const r = await onPty([PODMAN, ...args]);
    expect(r.stdout).toMatch(/\/dev\/pts\/0\r*\n/);
    expect(r.stdout).toContain('stdin-tty');
    expect(r.status).toBe(4);
  });

  it('applies --memory and --pids-limit in the container’s cgroup', async () => {
    const r = await podman([
      'run',
      '--rm',
      ...runFlags(),
      '--memory',
      '64m',
      '--pids-limit',
      '50',
      'busybox',
      'sh',
      '-c',
      'cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max',
    ]);
    expect(r.out).toBe('67108864\n50');
  });

  it('a second container through the same runtime root while the first runs', async () => {
    await podman(['run', '-d', '--name', 'one', ...runFlags(), 'busybox', 'sleep', '100']);
    const r = await podman(['run', '--rm', ...runFlags(), 'busybox', 'echo', 'two']);
    expect(r.out).toBe('two');
    await podman(['rm', '-f', '-t', '0', 'one']);
  });
});
