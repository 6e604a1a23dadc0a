import type { FlagSpec } from '../args.js';
import { mountFlags } from './mount-flags.js';
import { settingFlags } from './run-setting-flags.js';

/** How the program runs: shared by `run`, `create` and `exec`. */
export const processFlags: FlagSpec[] = [
  { name: 'env', short: 'e', type: 'list', value: 'K=V', description: 'Set environment variables' },
  {
    name: 'workdir',
    short: 'w',
    type: 'string',
    value: 'DIR',
    description: 'Working directory inside the container',
  },
  {
    name: 'user',
    short: 'u',
    type: 'string',
    value: 'USER[:GROUP]',
    description: 'User to run as (name or uid)',
  },
  { name: 'interactive', short: 'i', type: 'boolean', description: 'Keep stdin open' },
  { name: 'tty', short: 't', type: 'boolean', description: 'Allocate a pseudo-terminal' },
];

/** The flags of `run` and `create`: kept apart from the commands so that early.ts loads little. */
export const createFlags: FlagSpec[] = [
  {
    name: 'detach',
    short: 'd',
    type: 'boolean',
    description: 'Run in the background and print the container ID',
  },
  { name: 'rm', type: 'boolean', description: 'Remove the container when it exits' },
  {
    name: 'restart',
    type: 'string',
    value: 'POLICY',
    description: 'Restart policy: no, on-failure[:max-retries], always, unless-stopped (default no)',
  },
  { name: 'name', type: 'string', description: 'Assign a name to the container' },
  {
    name: 'rootfs',
    type: 'string',
    value: 'DIR',
    description: 'Use DIR as the read-only root layer instead of an image',
  },
  {
    name: 'init',
    type: 'boolean',
    description: "Run corral's init as PID 1: it reaps orphans and forwards signals",
  },
  { name: 'hostname', short: 'h', type: 'string', description: 'Container host name' },
  ...networkFlags(),
  ...processFlags,
  ...settingFlags,
  ...mountFlags,
  {
    name: 'privileged',
    type: 'boolean',
    description: 'Give every capability and device access (host devices are not added)',
  },
  {
    name: 'cap-add',
    type: 'list',
    value: 'CAP',
    description: "Add a capability to Docker's defaults (ALL for every one)",
  },
  { name: 'cap-drop', type: 'list', value: 'CAP', description: 'Drop a capability (ALL for every one)' },
  {
    name: 'security-opt',
    type: 'list',
    value: 'OPT',
    description:
      "seccomp=FILE (a profile in Docker's format), seccomp=unconfined (no syscall filter), or no-new-privileges",
  },
  { name: 'read-only', type: 'boolean', description: "Mount the container's root read-only" },
  {
    name: 'storage-driver',
    type: 'string',
    value: 'overlay|fuse',
    description: 'Union filesystem backend (default overlay)',
  },
  { name: 'stop-signal', type: 'string', description: 'Signal to stop the container (default SIGTERM)' },
  {
    name: 'stop-timeout',
    type: 'string',
    value: 'SECONDS',
    description: 'Seconds to wait before killing on stop (default 10)',
  },
  {
    name: 'entrypoint',
    type: 'string',
    value: 'CMD',
    description: "Overwrite the image's default entrypoint",
  },
  { name: 'memory', short: 'm', type: 'string', value: 'BYTES', description: 'Memory limit (e.g. 64m)' },
  {
    name: 'memory-swap',
    type: 'string',
    value: 'BYTES',
    description: 'Memory plus swap limit; -1 for unlimited swap',
  },
  { name: 'memory-reservation', type: 'string', value: 'BYTES', description: 'Memory soft limit' },
  { name: 'cpus', type: 'string', value: 'N', description: 'Number of CPUs (e.g. 0.5)' },
  { name: 'cpu-period', type: 'string', value: 'US', description: 'CPU CFS period in microseconds' },
  { name: 'cpu-quota', type: 'string', value: 'US', description: 'CPU CFS quota in microseconds' },
  { name: 'cpu-shares', short: 'c', type: 'string', value: 'N', description: 'CPU shares (relative weight)' },
  {
    name: 'cpuset-cpus',
    type: 'string',
    value: 'LIST',
    description: 'CPUs in which to allow execution (0-3, 0,1)',
  },
  {
    name: 'cpuset-mems',
    type: 'string',
    value: 'LIST',
    description: 'Memory nodes in which to allow execution',
  },
  {
    name: 'pids-limit',
    type: 'string',
    value: 'N',
    description: 'Tune container pids limit (-1 for unlimited)',
  },
  { name: 'blkio-weight', type: 'string', value: 'N', description: 'Block IO weight (10-1000)' },
  {
    name: 'cgroup-parent',
    type: 'string',
    value: 'PATH',
    description: "Parent cgroup (relative to corral's own, or absolute)",
  },
];

/** The network flags of `run` and `create` (Docker's). */
function networkFlags(): FlagSpec[] {
  return [
    {
      name: 'network',
      type: 'string',
      value: 'MODE',
      description: "bridge (default), none, host, container:NAME, or a network's name",
    },
    {
      name: 'publish',
      short: 'p',
      type: 'list',
      value: '[IP:]HOST:CTR[/PROTO]',
      description: "Publish a container's port on the host (CTR alone: a free host port)",
    },
    {
      name: 'publish-all',
      short: 'P',
      type: 'boolean',
      description: 'Publish every port the image exposes on free host ports',
    },
    { name: 'ip', type: 'string', value: 'ADDR', description: 'IPv4 address on a user network' },
    { name: 'mac-address', type: 'string', value: 'MAC', description: 'MAC address of the interface' },
    { name: 'network-alias', type: 'list', value: 'NAME', description: 'Another name on a user network' },
    { name: 'add-host', type: 'list', value: 'NAME:IP', description: 'Add a line to /etc/hosts' },
    { name: 'dns', type: 'list', value: 'IP', description: 'Set a DNS server in /etc/resolv.conf' },
    { name: 'dns-search', type: 'list', value: 'DOMAIN', description: 'Set a DNS search domain' },
    { name: 'dns-option', type: 'list', value: 'OPT', description: 'Set a DNS option' },
  ];
}
