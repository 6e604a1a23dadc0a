import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openCgroup, type ProcCgroup } from '@corral/cgroups';
import { RuntimeError } from './errors.js';

/**
 * What a create has made before its state.json exists, written before it makes anything
 * outside its folder (the cgroup): a create killed with SIGKILL half way leaves this, and
 * `delete` takes away what it names. state.json, written last, supersedes it.
 */
interface Creating {
  cgroupsPath: string | null;
  cgroupOwn: ProcCgroup[];
}

const FILE = 'creating.json';

export function writeCreating(dir: string, creating: Creating): void {
  writeFileSync(join(dir, FILE), JSON.stringify(creating), { mode: 0o600 });
}

/**
 * Removes what a create killed half way made: the processes in its cgroup (the init waiting
 * on its sync pipe), every folder of the cgroup, then the container's folder.
 */
export async function removeHalfCreated(dir: string): Promise<void> {
  let creating: Creating | undefined;
  try {
    creating = JSON.parse(readFileSync(join(dir, FILE), 'utf8')) as Creating;
  } catch {
    creating = undefined; // killed before it made a cgroup (or before it wrote the file)
  }
  if (creating?.cgroupsPath) {
    try {
      const cgroup = openCgroup({ path: creating.cgroupsPath, own: creating.cgroupOwn });
      // Killed while making it, only some controllers' folders may be there: remove() takes those.
      if (cgroup.processes().length) await cgroup.killAll('SIGKILL');
      await cgroup.remove();
    } catch (e) {
      // The folder stays, so that a later delete tries again.
      throw new RuntimeError(`removing the cgroup of a half-created container: ${(e as Error).message}`);
    }
  }
  if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
}
