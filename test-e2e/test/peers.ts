// What the tests that drive podman (and a program on a pty) share: podman's global flags that
// keep all its state in the test's folder, the rlimits this machine's root may give, and a
// python pty that plays the user's terminal.
import path from 'node:path';
import { exec, type Result } from './helpers.js';

export const PODMAN = '/usr/bin/podman';

/**
 * podman's global flags: storage, run root, tmp dir and network config under `tmp`, cgroupfs,
 * file events, and the runtime (`runtime`: the flags naming it and its own flags).
 */
export function podmanGlobal(tmp: string, runtime: string[]): string[] {
  return [
    '--root',
    path.join(tmp, 'storage'),
    '--runroot',
    path.join(tmp, 'run'),
    '--tmpdir',
    path.join(tmp, 'tmp'),
    '--network-config-dir',
    path.join(tmp, 'net'),
    '--storage-driver',
    'overlay',
    '--cgroup-manager',
    'cgroupfs',
    '--events-backend',
    'file',
    ...runtime,
  ];
}

/**
 * Our root lacks CAP_SYS_RESOURCE and the hard limit of open files is 20000, so a runtime
 * cannot give podman's default rlimits: they are named (see DESIGN.md).
 */
export const PODMAN_RLIMITS = ['--ulimit', 'nofile=20000:20000', '--ulimit', 'nproc=32768:32768'];

const PTY_HARNESS = `
import os, pty, sys, time
pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
data = sys.stdin.read()
if data:
    time.sleep(1)
    os.write(fd, data.encode())
out = b''
while True:
    try: d = os.read(fd, 4096)
    except OSError: break
    if not d: break
    out += d
_, st = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors='replace'))
sys.exit(os.waitstatus_to_exitcode(st))
`;

/** Runs argv on a pty held by the test (python's pty module), typing `input` a second after. */
export function onPty(argv: string[], input = ''): Promise<Result> {
  return exec('python3', ['-c', PTY_HARNESS, ...argv], { input });
}
