import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCorral } from '@corral/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { alive, Sandbox, until } from './helpers.js';

// The read-only commands open the engine cheaply (issue 15): `ps` reclaims what interrupted
// runs left only when that would change what it lists, `images` never, `version` opens no data
// root. What ps prints stays what a full reclaim would make it print.
const s = new Sandbox();
afterAll(() => s.teardown());

const ok = async (args: string[]) => {
  const r = await s.corral(args);
  if (r.status !== 0) throw new Error(`corral ${args.join(' ')}: ${r.status} ${r.stderr}`);
  return r;
};
const record = (id: string) =>
  JSON.parse(readFileSync(join(s.root, 'containers', id, 'container.json'), 'utf8')) as {
    state: { watcherPid?: number; pid?: number };
  };

describe('quick opens of the data root', () => {
  it('version neither makes nor reads a data root', async () => {
    const root = join(s.root, 'never-made');
    const r = await runCorral(root, ['version']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.out).toMatch(/Cgroup version: +(1|2)/);
    expect(r.out).toMatch(/Storage driver: +overlay/);
    expect(existsSync(root)).toBe(false);
  });

  it('ps shows a container whose keeper was killed as exited, and releases what it left', async () => {
    const id = (await ok(['run', '-d', '--network', 'none', 'busybox', 'sleep', '300'])).out;
    const { watcherPid, pid } = record(id).state;
    expect(watcherPid).toBeGreaterThan(0);
    expect(s.mounts().some((l) => l.includes(id))).toBe(true);
    process.kill(watcherPid!, 'SIGKILL');
    // The keeper takes its container with it (the parent-death signal).
    await until(() => !alive(watcherPid!) && !(pid && alive(pid)), 'keeper and container gone');
    const ps = await ok(['ps', '-a', '--no-trunc', '--format', '{{.ID}} {{.Status}}']);
    expect(ps.out).toMatch(new RegExp(`^${id} Exited \\(137\\)`, 'm'));
    expect((await ok(['ps', '-q', '--no-trunc'])).out.split('\n')).not.toContain(id);
    // ps reclaims what the dead keeper left (the root's mount), as every command does.
    expect(s.mounts().filter((l) => l.includes(id))).toEqual([]);
    await ok(['rm', id]);
  });
});
