import type { FlagSpec } from '../args.js';

/**
 * The flags of `run` and `create` for the image pull, limits beyond the cgroup's, labels,
 * devices, sysctls, the log, health checks and the attached streams (Docker's names). Data
 * only: early.ts parses run lines with these before the rest of the CLI loads.
 */
export const settingFlags: FlagSpec[] = [
  {
    name: 'pull',
    type: 'string',
    value: 'missing|always|never',
    description: 'Pull the image before creating (default missing)',
  },
  {
    name: 'platform',
    type: 'string',
    value: 'OS/ARCH',
    description: 'Platform to pull if the image is missing',
  },
  {
    name: 'ulimit',
    type: 'list',
    value: 'NAME=SOFT[:HARD]',
    description: 'Resource limit such as nofile=1024:2048 (-1 for unlimited)',
  },
  { name: 'env-file', type: 'list', value: 'FILE', description: 'Read K=V environment lines from a file' },
  { name: 'label', short: 'l', type: 'list', value: 'K=V', description: 'Set metadata on the container' },
  { name: 'label-file', type: 'list', value: 'FILE', description: 'Read K=V label lines from a file' },
  {
    name: 'group-add',
    type: 'list',
    value: 'GROUP',
    description: "Add a supplementary group (a name of the container's /etc/group, or a gid)",
  },
  {
    name: 'device',
    type: 'list',
    value: 'HOST[:CTR][:rwm]',
    description: 'Add a host device to the container, with its cgroup permissions',
  },
  { name: 'shm-size', type: 'string', value: 'BYTES', description: 'Size of /dev/shm (default 64m)' },
  {
    name: 'sysctl',
    type: 'list',
    value: 'K=V',
    description: 'Set a namespaced sysctl (kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*, net.*)',
  },
  { name: 'oom-kill-disable', type: 'boolean', description: 'Disable the OOM killer (cgroup v1)' },
  {
    name: 'oom-score-adj',
    type: 'string',
    value: 'N',
    description: "Tune the host's OOM preferences (-1000 to 1000)",
  },
  { name: 'log-driver', type: 'string', value: 'json-file', description: 'Logging driver (json-file only)' },
  {
    name: 'log-opt',
    type: 'list',
    value: 'K=V',
    description: 'json-file log options: max-size=10m, max-file=3 (rotation)',
  },
  { name: 'cidfile', type: 'string', value: 'FILE', description: 'Write the container ID to the file' },
  {
    name: 'sig-proxy',
    type: 'boolean',
    description: 'Pass signals the CLI receives to the attached program (default true)',
  },
  {
    name: 'attach',
    short: 'a',
    type: 'list',
    value: 'STDIN|STDOUT|STDERR',
    description: 'Attach only these streams (the others are not connected)',
  },
  { name: 'health-cmd', type: 'string', value: 'CMD', description: 'Command to run to check health (sh -c)' },
  {
    name: 'health-interval',
    type: 'string',
    value: 'DURATION',
    description: 'Time between running the check (default 30s)',
  },
  {
    name: 'health-retries',
    type: 'string',
    value: 'N',
    description: 'Consecutive failures needed to report unhealthy (default 3)',
  },
  {
    name: 'health-timeout',
    type: 'string',
    value: 'DURATION',
    description: 'Maximum time to allow one check to run (default 30s)',
  },
  {
    name: 'health-start-period',
    type: 'string',
    value: 'DURATION',
    description: 'Start period during which failures do not count (default 0s)',
  },
  { name: 'no-healthcheck', type: 'boolean', description: 'Disable any container-specified HEALTHCHECK' },
];
