// The spec's fields that corral-runtime gained for runc's consumers, run for real through the
// command line: hooks, a terminal sent over --console-socket, a PID namespace joined by path,
// personality, --preserve-fds, sysctl, the session keyring, --no-pivot, oomScoreAdj and the
// cgroup mount.
import { spawn } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { arch } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OciSpec } from '../dist/index.js';
import { corralRuntime, until } from './cli-helpers.js';
import { bundleMaker, busyboxRootfs, tempDir } from './helpers.js';

const tmp = tempDir('cli-spec');
const rootfs = join(tmp, 'rootfs');
const root = join(tmp, 'state');
const bundle = bundleMaker(tmp, rootfs);
const cr = corralRuntime(tmp, root);

beforeAll(() => {
  busyboxRootfs(rootfs);
  mkdirSync(join(rootfs, 'tmp'));
});
afterAll(() => {
  for (const c of JSON.parse(cr(['list', '--format', 'json']).stdout) ?? []) cr(['delete', '--force', c.id]);
  rmSync(tmp, { recursive: true, force: true });
});

const withPts = (s: OciSpec) => {
  s.mounts!.push({
    destination: '/dev/pts',
    type: 'devpts',
    source: 'devpts',
    options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620'],
  });
};

describe('hooks', () => {
  const log = join(tmp, 'hooks.log');
  const hook = join(tmp, 'hook.sh');
  beforeAll(() => {
    // Each hook logs its name, its mount namespace and the state it read on stdin.
    writeFileSync(hook, `#!/bin/sh\necho "$1 $(readlink /proc/self/ns/mnt) $(cat)" >> ${log}\n`);
    chmodSync(hook, 0o755);
    // startContainer runs inside the container: its path is the container's.
    mkdirSync(join(rootfs, 'hooks'), { recursive: true });
    writeFileSync(
      join(rootfs, 'hooks/start.sh'),
      '#!/bin/sh\necho "startContainer $(hostname) $(cat)" >> /tmp/start.log\n',
    );
    chmodSync(join(rootfs, 'hooks/start.sh'), 0o755);
  });

  it('run every kind at its point, with the state on stdin', async () => {
    const h = (name: string) => ({ path: hook, args: ['hook.sh', name] });
    const b = bundle(['sh', '-c', 'readlink /proc/self/ns/mnt > /tmp/ns; exec sleep 100'], (s) => {
      s.hooks = {
        prestart: [h('prestart')],
        createRuntime: [h('createRuntime')],
        createContainer: [h('createContainer')],
        startContainer: [{ path: '/hooks/start.sh' }],
        poststart: [h('poststart')],
        poststop: [h('poststop')],
      };
      s.annotations = { 'org.example': 'yes' };
    });
    expect(cr(['create', '--bundle', b, 'hooked']).status).toBe(0);
    const { pid } = JSON.parse(cr(['state', 'hooked']).stdout);
    expect(cr(['start', 'hooked']).status).toBe(0);
    await until(() => existsSync(join(rootfs, 'tmp/ns')));
    expect(cr(['delete', '--force', 'hooked']).status).toBe(0);
    const containerNs = readFileSync(join(rootfs, 'tmp/ns'), 'utf8').trim();
    const lines = readFileSync(log, 'utf8').trim().split('\n');
    expect(lines.map((l) => l.split(' ')[0])).toEqual([
      'prestart',
      'createRuntime',
      'createContainer',
      'poststart',
      'poststop',
    ]);
    const parsed = lines.map((l) => {
      const [name, ns, ...state] = l.split(' ');
      return { name, ns, state: JSON.parse(state.join(' ')) };
    });
    const base = { ociVersion: '1.2.0', id: 'hooked', pid, bundle: b, annotations: { 'org.example': 'yes' } };
    expect(parsed[0].state).toEqual({ ...base, status: 'creating' });
    expect(parsed[1].state).toEqual({ ...base, status: 'creating' });
    expect(parsed[2].state).toEqual({ ...base, status: 'creating' });
    expect(parsed[3].state).toEqual({ ...base, status: 'running' });
    expect(parsed[4].state).toEqual({ ...base, status: 'stopped' });
    // prestart and createRuntime run in the runtime's namespace, createContainer in the container's.
    expect(parsed[0].ns).not.toBe(containerNs);
    expect(parsed[2].ns).toBe(containerNs);
    const start = readFileSync(join(rootfs, 'tmp/start.log'), 'utf8');
    expect(start).toMatch(/^startContainer rt \{.*"status":"created"/);
  });

  it('a failing or slow hook fails create, with its output and no state left', () => {
    const fail = bundle(['true'], (s) => {
      s.hooks = { prestart: [{ path: '/bin/sh', args: ['sh', '-c', 'echo broken >&2; exit 2'] }] };
    });
    const r = cr(['create', '--bundle', fail, 'failhook']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/prestart hook #0.*exit status 2.*broken/);
    expect(existsSync(join(root, 'failhook'))).toBe(false);

    const slow = bundle(['true'], (s) => {
      s.hooks = { createRuntime: [{ path: '/bin/sleep', args: ['sleep', '30'], timeout: 1 }] };
    });
    const t = Date.now();
    const r2 = cr(['create', '--bundle', slow, 'slowhook']);
    expect(r2.status).toBe(1);
    expect(r2.stderr).toContain('timed out after 1 s');
    expect(Date.now() - t).toBeLessThan(20_000);
    expect(existsSync(join(root, 'slowhook'))).toBe(false);
  });

  it('a failing poststop hook is a warning: the delete still happens', () => {
    const b = bundle(['true'], (s) => {
      s.hooks = { poststop: [{ path: '/bin/false' }] };
    });
    expect(cr(['run', '--bundle', b, 'stopfail'])).toMatchObject({
      status: 0,
      stderr: expect.stringContaining('level=warning'),
    });
    expect(existsSync(join(root, 'stopfail'))).toBe(false);
  });

  it('a failing poststart hook fails start and ends the container, as runc does', async () => {
    const b = bundle(['sleep', '100'], (s) => {
      s.hooks = { poststart: [{ path: '/bin/sh', args: ['sh', '-c', 'echo refused >&2; exit 3'] }] };
    });
    expect(cr(['create', '--bundle', b, 'startfail']).status).toBe(0);
    const r = cr(['start', 'startfail']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/poststart hook #0.*exit status 3.*refused/);
    const status = () => JSON.parse(cr(['state', 'startfail']).stdout).status;
    await until(() => status() === 'stopped', 10_000, 'the container killed');
    expect(cr(['delete', 'startfail']).status).toBe(0);
    expect(existsSync(join(root, 'startfail'))).toBe(false);
  });
});

describe('a terminal over --console-socket', () => {
  it('sends the pty master with SCM_RIGHTS; the program has it as its controlling terminal', async () => {
    const socket = join(tmp, 'console.sock');
    const out = join(tmp, 'console.out');
    // A receiver as conmon is one: accept, take the fd (SCM_RIGHTS), read the terminal to its end.
    const receiver = spawn(
      'python3',
      [
        '-c',
        `
import socket, os, sys
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(1)
print('listening', flush=True)
c, _ = s.accept()
msg, fds, _, _ = socket.recv_fds(c, 1024, 1)
with open(sys.argv[2], 'wb') as f:
    while True:
        try: d = os.read(fds[0], 4096)
        except OSError: break
        if not d: break
        f.write(d)
`,
        socket,
        out,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    await new Promise((r) => receiver.stdout.once('data', r));
    const b = bundle(['sh', '-c', 'echo tty-ok $(tty); [ -t 0 ] && echo stdin-is-tty'], (s) => {
      s.process.terminal = true;
      withPts(s);
    });
    expect(cr(['create', '--bundle', b, '--console-socket', socket, 'tty'])).toMatchObject({ status: 0 });
    expect(cr(['start', 'tty']).status).toBe(0);
    await new Promise((r) => receiver.on('exit', r));
    expect(readFileSync(out, 'utf8')).toMatch(/tty-ok \/dev\/pts\/0\r\nstdin-is-tty\r\n/);
    cr(['delete', '--force', 'tty']);
  });

  it('refuses a terminal without a console socket when it would detach', () => {
    const b = bundle(['true'], (s) => {
      s.process.terminal = true;
    });
    expect(cr(['create', '--bundle', b, 'nosock'])).toMatchObject({
      status: 1,
      stderr: expect.stringContaining('console socket'),
    });
  });
});

describe('spec fields', () => {
  it('joins another container’s PID namespace by path (a pod)', () => {
    expect(cr(['run', '-d', '--bundle', bundle(['sleep', '100']), 'infra']).status).toBe(0);
    const { pid } = JSON.parse(cr(['state', 'infra']).stdout);
    const b = bundle(['ps', '-o', 'pid,args'], (s) => {
      s.linux!.namespaces = s.linux!.namespaces!.map((n) =>
        n.type === 'pid' ? { type: 'pid', path: `/proc/${pid}/ns/pid` } : n,
      );
    });
    const r = cr(['run', '--bundle', b, 'member']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^\s+1 sleep 100$/m);
    expect(r.stdout).toMatch(/ps -o pid,args/);
    cr(['delete', '--force', 'infra']);
  });

  it('personality LINUX32 changes what uname says', () => {
    const r = cr([
      'run',
      '--bundle',
      bundle(['uname', '-m'], (s) => {
        s.linux!.personality = { domain: 'LINUX32' };
      }),
      'p32',
    ]);
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe(arch() === 'arm64' ? 'armv8l' : 'i686');
  });

  it('--preserve-fds passes fds 3.. to the program', () => {
    const file = join(tmp, 'preserved');
    const fd = openSync(file, 'w');
    try {
      const r = cr(
        [
          'run',
          '--preserve-fds',
          '1',
          '--bundle',
          bundle(['sh', '-c', 'echo via-fd-3 >&3; ls /proc/self/fd']),
          'fds',
        ],
        { fds: [fd] },
      );
      expect(r.status).toBe(0);
      // 0-2, 3 and ls's own directory fd: nothing else leaked.
      expect(r.stdout.split('\n').filter(Boolean).sort()).toEqual(['0', '1', '2', '3', '4']);
    } finally {
      closeSync(fd);
    }
    expect(readFileSync(file, 'utf8')).toBe('via-fd-3\n');
  });

  it('writes namespaced sysctls, before /proc/sys turns read-only', () => {
    const r = cr([
      'run',
      '--bundle',
      bundle(['cat', '/proc/sys/kernel/shmmni', '/proc/sys/net/ipv4/ip_forward'], (s) => {
        s.linux!.namespaces!.push({ type: 'network' });
        s.linux!.sysctl = { 'kernel.shmmni': '1234', 'net.ipv4.ip_forward': '1' };
        s.linux!.readonlyPaths = ['/proc/sys'];
      }),
      'sysctl',
    ]);
    expect(r).toMatchObject({ status: 0, stdout: '1234\n1\n' });
  });

  it('joins a session keyring of its own unless --no-new-keyring', () => {
    const b = bundle(['cat', '/proc/keys']);
    expect(cr(['run', '--bundle', b, 'keys']).stdout).toMatch(/keyring\s+_ses\.keys:/);
    expect(cr(['run', '--no-new-keyring', '--bundle', b, 'keys2']).stdout).not.toMatch(/_ses\.keys2/);
  });

  it('--no-pivot moves the root instead of pivot_root', () => {
    const r = cr(['run', '--no-pivot', '--bundle', bundle(['sh', '-c', 'ls /; hostname']), 'nopivot']);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('bin\n');
    expect(r.stdout).toContain('rt\n');
  });

  it('sets oomScoreAdj', () => {
    const r = cr([
      'run',
      '--bundle',
      bundle(['cat', '/proc/self/oom_score_adj'], (s) => {
        s.process.oomScoreAdj = 500;
      }),
      'oom',
    ]);
    expect(r).toMatchObject({ status: 0, stdout: '500\n' });
  });

  it('mounts the container’s own cgroups for a cgroup mount, with and without a cgroup namespace', () => {
    const args = [
      'sh',
      '-c',
      'cat /sys/fs/cgroup/pids/pids.max; grep -c . /sys/fs/cgroup/pids/cgroup.procs; touch /sys/fs/cgroup/pids/x 2>&1 | grep -c Read-only',
    ];
    const cg = (s: OciSpec) => {
      s.mounts!.push({
        destination: '/sys/fs/cgroup',
        type: 'cgroup',
        source: 'cgroup',
        options: ['ro', 'nosuid', 'nodev', 'noexec'],
      });
      s.linux!.resources = { pids: { limit: 77 } };
    };
    expect(cr(['run', '--bundle', bundle(args, cg), 'cgmount'])).toMatchObject({
      status: 0,
      stdout: '77\n2\n1\n',
    });
    const ns = bundle([...args.slice(0, 2), `${args[2]}; cat /proc/self/cgroup | grep pids`], (s) => {
      cg(s);
      s.linux!.namespaces!.push({ type: 'cgroup' });
    });
    expect(cr(['run', '--bundle', ns, 'cgns'])).toMatchObject({
      status: 0,
      stdout: expect.stringMatching(/^77\n2\n1\n\d+:pids:\/\n$/),
    });
  });
});
