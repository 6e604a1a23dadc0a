// podman as the benchmarks run it: every piece of its state under `dir` (storage, run root,
// tmp dir, network config), runc and cgroupfs (crun refuses this machine's hybrid cgroups),
// file events, and the run flags this machine's root can honour (DESIGN.md: rlimits above the
// hard limit fail), with containers beneath `cgroupParent` and conmon left in ours.
import { join } from 'node:path';

/** podman's argv up to the command; `runtime` flags replace `--runtime runc` when given. */
export function podmanCommand(dir, runtime = ['--runtime', 'runc']) {
  return [
    'podman',
    '--root',
    join(dir, 'podman'),
    '--runroot',
    join(dir, 'podman-run'),
    '--tmpdir',
    join(dir, 'podman-tmp'),
    '--network-config-dir',
    join(dir, 'podman-net'),
    '--cgroup-manager',
    'cgroupfs',
    '--events-backend',
    'file',
    ...runtime,
  ];
}

/** Flags of every `podman run` here: no pull, containers beneath `cgroupParent`, rlimits we can give. */
export function podmanRunFlags(cgroupParent) {
  return [
    '--pull=never',
    '--cgroups',
    'no-conmon',
    '--cgroup-parent',
    cgroupParent,
    '--ulimit',
    'nofile=20000:20000',
    '--ulimit',
    'nproc=32768:32768',
  ];
}

/** `podman run --rm --network none … --rootfs ROOTFS true`: the start of a container from a folder. */
export function podmanRunTrue(dir, cgroupParent, rootfs) {
  return [
    ...podmanCommand(dir),
    'run',
    '--rm',
    '--network',
    'none',
    ...podmanRunFlags(cgroupParent),
    '--rootfs',
    rootfs,
    'true',
  ];
}
