// What a network folder (a data root's network/) holds about containers, read from its files
// without a NetworkManager, whose module brings the CNI driver and the host's rules: for a
// listing (`corral ps`, issue 15) and for the manager itself.
import { join } from 'node:path';
import { entries, readJson } from './files.js';
import { NetnsDir } from './netns.js';
import type { Attachment } from './types.js';

/** The attachments kept under `root` (a container's, a network's, or all). */
export function attachmentsIn(
  root: string,
  filter: { containerId?: string; networkId?: string } = {},
): Attachment[] {
  const dir = join(root, 'attachments');
  const ids = filter.containerId ? [filter.containerId] : entries(dir);
  const out: Attachment[] = [];
  for (const id of ids) {
    for (const f of entries(join(dir, id))) {
      const a = readJson<Attachment>(join(dir, id, f));
      if (a && (!filter.networkId || a.networkId === filter.networkId)) out.push(a);
    }
  }
  return out;
}

/** Every container with something of its network kept under `root`: attachments or a namespace. */
export function containersIn(root: string): string[] {
  return [...new Set([...entries(join(root, 'attachments')), ...new NetnsDir(join(root, 'netns')).list()])];
}
