// What an engine test's data root holds on the machine: its mounts, container records and
// runtime states (each should be empty once a container is gone), and a stream read whole.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export function rootState(root: string) {
  return {
    mounts: () =>
      readFileSync('/proc/self/mountinfo', 'utf8')
        .split('\n')
        .filter((l) => l.includes(root)),
    containers: () => readdirSync(join(root, 'containers')),
    runtimeStates: () => (existsSync(join(root, 'runtime')) ? readdirSync(join(root, 'runtime')) : []),
  };
}

export async function text(stream: NodeJS.ReadableStream | null): Promise<string> {
  let s = '';
  for await (const c of stream ?? []) s += c.toString();
  return s;
}
