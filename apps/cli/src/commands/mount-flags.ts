import type { FlagSpec } from '../args.js';

/** The mount flags of `run` and `create` (Docker's): no engine import, early.ts reads them. */
export const mountFlags: FlagSpec[] = [
  {
    name: 'volume',
    short: 'v',
    type: 'list',
    value: 'HOST:CTR[:ro]|NAME:CTR|CTR',
    description: 'Bind a host folder, mount a named volume (made on first use), or an anonymous one',
  },
  {
    name: 'mount',
    type: 'list',
    value: 'type=bind|volume|tmpfs,...',
    description:
      'A mount with keys: source/src, target/dst, readonly, bind-propagation, volume-nocopy, volume-opt, volume-label, tmpfs-size, tmpfs-mode',
  },
  {
    name: 'tmpfs',
    type: 'list',
    value: 'PATH[:OPTS]',
    description: 'Mount a tmpfs (e.g. /run:size=64m,mode=1777)',
  },
  {
    name: 'volumes-from',
    type: 'list',
    value: 'CONTAINER[:ro|rw]',
    description: 'Mount the volumes and binds of another container',
  },
];
