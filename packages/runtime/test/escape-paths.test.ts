// Escape classes of paths the init resolves on the host for a container (issue 9, part 6),
// each attack run for real against a canary folder outside the rootfs, through both ways a
// container is built: by its Node init (create, start) and by run's fast path (runFast).
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { busyboxRootfs, mountsUnder, removeTree, tempDir, until } from '@corral/testkit';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { type OciSpec, Runtime, runFast } from '../dist/index.js';

const tmp = tempDir('escape');
const rt = new Runtime({ root: join(tmp, 'state') });
/** A host folder the container must never write into, nor mount onto. */
const canary = join(tmp, 'canary');
mkdirSync(canary);
writeFileSync(join(canary, 'keep'), 'host data\n');

afterAll(async () => {
  for (const id of rt.list()) await rt.delete(id, { force: true });
  removeTree(tmp);
});

/** A busybox rootfs (Debian's busybox-static). */
const makeRootfs = (name: string) => busyboxRootfs(join(tmp, name));

let n = 0;
function bundle(rootfs: string, args: string[], change: (s: OciSpec) => void = () => {}): string {
  const dir = join(tmp, `bundle${n++}`);
  mkdirSync(dir);
  const spec: OciSpec = {
    ociVersion: '1.2.0',
    process: { user: { uid: 0, gid: 0 }, args, env: ['PATH=/bin'], cwd: '/' },
    root: { path: rootfs },
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'mode=755'] },
    ],
    linux: { namespaces: [{ type: 'pid' }, { type: 'mount' }, { type: 'uts' }, { type: 'ipc' }] },
  };
  change(spec);
  writeFileSync(join(dir, 'config.json'), JSON.stringify(spec));
  return dir;
}

/** Runs a bundle to its end; its output, or the error create gave. */
async function run(id: string, dir: string): Promise<string> {
  let c: Awaited<ReturnType<Runtime['create']>>;
  try {
    c = await rt.create(id, dir, { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    return `create failed: ${(e as Error).message}`;
  }
  let out = '';
  c.stdout?.on('data', (d) => (out += d));
  c.stderr?.on('data', (d) => (out += d));
  await rt.start(id);
  await c.wait();
  await rt.delete(id, { force: true });
  return out;
}

/** The same through run's fast path: a vfork child of this process builds the container. */
async function runViaFastPath(id: string, dir: string): Promise<string> {
  const file = join(tmp, `${id}.out`);
  const out = openSync(file, 'w');
  const none = openSync('/dev/null', 'r');
  try {
    let r: Awaited<ReturnType<typeof runFast>>;
    try {
      r = await runFast(rt.root, id, dir, { stdio: [none, out, out] });
    } catch (e) {
      return `create failed: ${(e as Error).message}`;
    }
    await until(() => r.poll() !== null, `${id} to end`, 30_000);
    await rt.delete(id, { force: true });
  } finally {
    closeSync(out);
    closeSync(none);
  }
  return readFileSync(file, 'utf8');
}

const WAYS = [
  ['its init', run, ''],
  ['the fast path', runViaFastPath, '-fast'],
] as const;

/** The canary folder exactly as the test made it. */
function expectCanaryUntouched(): void {
  expect(readdirSync(canary)).toEqual(['keep']);
  expect(readFileSync(join(canary, 'keep'), 'utf8')).toBe('host data\n');
  expect(mountsUnder(canary)).toEqual([]);
}

const racerScript = fileURLToPath(new URL('../../sys/test/swap-racer.mjs', import.meta.url));
let racer: ChildProcess | null = null;
afterEach(() => {
  racer?.kill('SIGKILL');
  racer = null;
});

for (const [way, run, tag] of WAYS) {
  describe(`mount targets and created paths (CVE-2021-30465 class), built by ${way}`, () => {
    it('resolves a target whose path is a symlink to a host folder inside the rootfs', async () => {
      const rootfs = makeRootfs(`static${tag}`);
      symlinkSync(canary, join(rootfs, 'data')); // absolute: on the host it is the canary
      symlinkSync(canary, join(rootfs, 'work'));
      const file = join(tmp, 'bind-source');
      writeFileSync(file, 'bound\n');
      const out = await run(
        `static${tag}`,
        bundle(
          rootfs,
          [
            'sh',
            '-c',
            'cat /data/f; echo x 2>/dev/null >/data/f || echo ro; touch /data/x && echo wrote; pwd',
          ],
          (s) => {
            s.mounts!.push(
              { destination: '/data', type: 'tmpfs', source: 'tmpfs' },
              { destination: '/data/f', type: 'bind', source: file, options: ['bind', 'ro'] },
            );
            s.process.cwd = '/work/sub';
          },
        ),
      );
      expect(out).toBe(`bound\nro\nwrote\n${canary}/sub\n`);
      // The links led inside the rootfs: the mounts, the file and the working directory are there.
      expectCanaryUntouched();
    });

    it('never creates or mounts on the host while a path component is swapped for a symlink', async () => {
      const rootfs = makeRootfs(`race${tag}`);
      mkdirSync(join(rootfs, 'data'));
      symlinkSync(canary, join(rootfs, 'data.link'));
      const file = join(tmp, 'race-source');
      writeFileSync(file, 'bound\n');
      // What a second container sharing this folder would do: swap data and data.link, atomically.
      racer = spawn(process.execPath, [racerScript, join(rootfs, 'data'), join(rootfs, 'data.link')], {
        stdio: 'ignore',
      });
      for (let i = 0; i < 25; i++) {
        await run(
          `race${tag}${i}`,
          bundle(rootfs, ['true'], (s) => {
            s.mounts!.push(
              { destination: `/data/t${i}/deep`, type: 'tmpfs', source: 'tmpfs' },
              { destination: `/data/f${i}`, type: 'bind', source: file, options: ['bind'] },
            );
            s.process.cwd = `/data/w${i}`;
          }),
        );
      }
      racer.kill('SIGKILL');
      expectCanaryUntouched();
    });
  });

  describe(`sysfs bound from the host (when sysfs cannot be mounted), built by ${way}`, () => {
    it('is read-only in every submount: the host cgroupfs cannot be written', async () => {
      const name = `corral-canary-${process.pid}${tag}`;
      const hostPath = `/sys/fs/cgroup/${name}`;
      try {
        const out = await run(
          `sysfs${tag}`,
          bundle(
            makeRootfs(`sysfs${tag}`),
            [
              'sh',
              '-c',
              `touch /sys/fs/cgroup/${name}; mkdir /sys/fs/cgroup/pids/${name}; cat /sys/kernel/mm/transparent_hugepage/enabled >/dev/null && echo readable`,
            ],
            (s) => {
              // An option sysfs does not know makes the kernel refuse the mount: the fallback runs.
              s.mounts!.push({
                destination: '/sys',
                type: 'sysfs',
                source: 'sysfs',
                options: ['nosuid', 'noexec', 'nodev', 'ro', 'corral-not-an-option'],
              });
            },
          ),
        );
        expect(out).toContain(`touch: /sys/fs/cgroup/${name}: Read-only file system`);
        expect(out).toContain(
          `mkdir: can't create directory '/sys/fs/cgroup/pids/${name}': Read-only file system`,
        );
        expect(out).toContain('readable');
        expect(existsSync(hostPath)).toBe(false);
        expect(existsSync(`/sys/fs/cgroup/pids/${name}`)).toBe(false);
      } finally {
        rmSync(hostPath, { force: true });
        spawnSync('rmdir', [`/sys/fs/cgroup/pids/${name}`]);
      }
    });
  });
}
