import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { corralBin } from '@corral/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { Sandbox } from './helpers.js';

// Issue 17: a `run --rm` SIGKILLed while it creates its container (record, mount, runtime
// create, cgroups) must leave nothing that `rm -f` and the next command do not take away.

const s = new Sandbox();
afterAll(() => s.teardown());

/** Every cgroup folder on the host whose path names the container. */
function cgroupsOf(id: string): string[] {
  const r = spawnSync('find', ['/sys/fs/cgroup', '-name', `*${id}*`, '-type', 'd'], { encoding: 'utf8' });
  return r.stdout.split('\n').filter(Boolean);
}

const list = (dir: string) => (existsSync(dir) ? readdirSync(dir) : []);

/** Starts `corral run --rm ...` and SIGKILLs it after `ms`; resolves once it is gone. */
function runKilledAfter(ms: number, args: string[]): Promise<void> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [corralBin, '--root', s.root, 'run', '--rm', ...args], {
      stdio: 'ignore',
    });
    const timer = setTimeout(() => p.kill('SIGKILL'), ms);
    p.on('exit', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

describe('a run --rm killed with SIGKILL while it creates', () => {
  it('leaves no cgroup, mount, runtime state or record after rm -f and the next command', async () => {
    // Made once, so that every round's time goes to the create itself.
    expect((await s.corral(['run', '--rm', 'busybox', 'true'])).status).toBe(0);
    const seen = new Set<string>();
    const delays = [150, 300, 450, 600, 750, 900, 1100, 1300, 1600, 2000, 2600];
    for (const [i, ms] of delays.entries()) {
      await runKilledAfter(ms, ['--name', `killed${i}`, '-m', '64m', 'busybox', 'sleep', '30']);
      const ids = [...list(join(s.root, 'containers')), ...list(join(s.root, 'runtime'))];
      for (const id of ids) seen.add(id);
      await s.corral(['rm', '-f', `killed${i}`]); // may say No such container: it died before the record
      await s.corral(['ps', '-a']); // the next command reclaims what an --rm run's death left
      for (const id of ids) {
        expect(cgroupsOf(id), `cgroups of ${id} (killed after ${ms} ms)`).toEqual([]);
      }
      expect(list(join(s.root, 'containers')), `records (killed after ${ms} ms)`).toEqual([]);
      expect(list(join(s.root, 'runtime')), `runtime state (killed after ${ms} ms)`).toEqual([]);
      expect(s.mounts(), `mounts (killed after ${ms} ms)`).toEqual([]);
      expect(list(join(s.root, 'names'))).toEqual([]);
    }
    // Some rounds died after the container existed: the test saw what it meant to test.
    expect(seen.size).toBeGreaterThan(0);
  }, 600_000);
});
