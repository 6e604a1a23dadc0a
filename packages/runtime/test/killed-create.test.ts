import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Runtime } from '../dist/index.js';
import { bundleMaker, busyboxRootfs, tempDir } from './helpers.js';

// Issue 17: a runtime process SIGKILLed during create, after it made the container's cgroup
// and before it wrote state.json, left the cgroup folders for good (delete saw no state.json
// and removed only the state folder).

const tmp = tempDir('killed-create');
const rootfs = busyboxRootfs(join(tmp, 'rootfs'));
const bundle = bundleMaker(tmp, rootfs);
const stateRoot = join(tmp, 'state');
const leaf = `corral-killed-create-${randomBytes(4).toString('hex')}`;
const rt = new Runtime({ root: stateRoot });

afterAll(async () => {
  for (const id of rt.list()) await rt.delete(id, { force: true });
  await rt.delete('half', { force: true }).catch(() => {});
  rmSync(tmp, { recursive: true, force: true });
});

function cgroupDirs(): string[] {
  const r = spawnSync('find', ['/sys/fs/cgroup', '-name', leaf, '-type', 'd'], { encoding: 'utf8' });
  return r.stdout.split('\n').filter(Boolean);
}

/** Runs a create in a process of its own that stops once the init is in its cgroup; then SIGKILLs it. */
async function createKilledInCgroup(b: string): Promise<void> {
  const dist = new URL('../dist/index.js', import.meta.url).href;
  const script = `
    import { Runtime } from ${JSON.stringify(dist)};
    const rt = new Runtime({ root: process.argv[1] });
    await rt.create('half', process.argv[2], {
      stdio: 'ignore',
      beforeSetup: () => { process.stdout.write('in-cgroup\\n'); return new Promise(() => {}); },
    });`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script, stateRoot, b], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      if (d.toString().includes('in-cgroup')) resolve();
    });
    child.on('exit', (code) => reject(new Error(`the create ended (${code}) before it made the cgroup`)));
  });
  const gone = new Promise((r) => child.on('exit', r));
  child.kill('SIGKILL');
  await gone;
}

describe('a create killed with SIGKILL half way', () => {
  it('leaves a cgroup that delete removes, with the folder and the waiting init', async () => {
    const b = bundle(['true'], (s) => {
      s.linux!.cgroupsPath = leaf;
      s.linux!.resources = { pids: { limit: 64 } } as never;
    });
    await createKilledInCgroup(b);
    expect(existsSync(join(stateRoot, 'half'))).toBe(true);
    expect(existsSync(join(stateRoot, 'half', 'state.json'))).toBe(false);
    const made = cgroupDirs();
    expect(made.length).toBeGreaterThan(0);
    await rt.delete('half', { force: true });
    expect(cgroupDirs()).toEqual([]);
    expect(existsSync(join(stateRoot, 'half'))).toBe(false);
  });
});
