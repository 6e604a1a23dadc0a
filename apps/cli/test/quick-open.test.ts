import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { corralBin, runCorral, tempDir } from '@corral/testkit';
import { afterAll, describe, expect, it, onTestFinished } from 'vitest';
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

  it('ps and images read the root without the Engine; ps opens it when there is something to reclaim', async () => {
    // A preload that names the bundles of the Engine or the remote client the CLI loads.
    const dir = tempDir('cli-hook');
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const hook = join(dir, 'hook.cjs');
    writeFileSync(
      hook,
      `const M = require('node:module'); const load = M._load;
M._load = function (req, ...a) {
  const m = /bundle\\/(engine|remote)\\.cjs$/.exec(req);
  if (m) process.stderr.write('[bundle ' + m[1] + ']\\n');
  return load.call(this, req, ...a);
};`,
    );
    const cli = (args: string[]) => {
      const r = spawnSync(process.execPath, ['-r', hook, '--', corralBin, '--root', s.root, ...args], {
        encoding: 'utf8',
      });
      const bundles = [...r.stderr.matchAll(/\[bundle (\w+)\]/g)].map((m) => m[1]);
      return { status: r.status, out: r.stdout, err: r.stderr.replace(/\[bundle \w+\]\n/g, ''), bundles };
    };
    const id = (await ok(['run', '-d', '--network', 'none', '--name', 'listed', 'busybox', 'true'])).out;
    await until(
      () => record(id).state.watcherPid === undefined || !alive(record(id).state.watcherPid!),
      'its keeper to end',
    );
    let r = cli(['ps', '-a']);
    expect(r.status, r.err).toBe(0);
    expect(r.out).toMatch(/Exited \(0\) .* listed/);
    expect(r.bundles).toEqual([]);
    r = cli(['images']);
    expect(r.out).toMatch(/^busybox +latest/m);
    expect(r.bundles).toEqual([]);
    // What a writer SIGKILLed before its rename left: the Engine's reclaim removes it at ps.
    const ended = spawn('true');
    await new Promise((done) => ended.on('exit', done));
    const temp = join(s.root, 'containers', id, `container.json.${ended.pid}.tmp`);
    writeFileSync(temp, '{');
    r = cli(['ps', '-a']);
    expect(r.bundles).toEqual(['engine']);
    expect(r.out).toMatch(/listed/);
    expect(existsSync(temp)).toBe(false);
    expect(cli(['ps', '-a']).bundles).toEqual([]);
    // The Engine's bundle fails as the CLI's own code does (its errors are CorralErrors here).
    writeFileSync(temp, '{');
    r = cli(['ps', '--filter', 'bogus=1']);
    expect(r.bundles).toEqual(['engine']);
    expect([r.status, r.err]).toEqual([1, "corral: invalid filter 'bogus'\n"]);
    // What a killed pull or load left in the image store's temp folder goes as at any open.
    const left = join(s.root, 'image', 'tmp', `${ended.pid}.1-blob`);
    writeFileSync(left, 'x');
    r = cli(['images']);
    expect(r.bundles).toEqual(['engine']);
    expect(r.out).toMatch(/^busybox +latest/m);
    expect(existsSync(left)).toBe(false);
    // ps -s opens it for the sizes.
    expect(cli(['ps', '-a', '-s']).bundles).toEqual(['engine']);
    await ok(['rm', id]);
  });
});
