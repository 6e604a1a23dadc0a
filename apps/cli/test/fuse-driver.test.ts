import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { busyboxRootfs } from '@corral/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { Sandbox, until } from './helpers.js';

const s = new Sandbox();
afterAll(() => s.teardown());

/**
 * An afternoon of ordinary use in a few seconds: what a package manager does (thousands of
 * small files made, renamed into place, deleted), edits and deletions of the image's files,
 * a large file copied, and a shell "build" of generated scripts.
 */
const WORKLOAD = `
set -e
mkdir -p /work/pkgs
i=0
while [ $i -lt 1500 ]; do
  d=/work/pkgs/p$((i % 50)); mkdir -p $d; echo "module $i" > $d/f$i.js; i=$((i+1))
done
i=0; while [ $i -lt 50 ]; do mv /work/pkgs/p$i /work/pkgs/q$i; i=$((i+1)); done
i=0; while [ $i -lt 50 ]; do rm -f /work/pkgs/q$i/f$((i+100)).js; i=$((i+2)); done
rm -rf /work/pkgs/q7 /work/pkgs/q8
echo changed >> /etc/passwd
rm /etc/group
dd if=/dev/urandom of=/big bs=1M count=64 2>/dev/null
cp /big /big2
cmp /big /big2
rm /big
mkdir /build
i=0; while [ $i -lt 200 ]; do echo "echo \\$(( $i * $i ))" > /build/s$i.sh; i=$((i+1)); done
for f in /build/*.sh; do sh $f; done | sort -n | md5sum > /build/out
cat /build/out
find /work | wc -l
ls -la /work/pkgs | wc -l
`;

/** The pid of the fuse server of a container's root (its command line names the rootfs). */
function serverOf(id: string): number {
  const out = execFileSync('pgrep', ['-f', `fuse/main.js .*${id}/rootfs`], { encoding: 'utf8' });
  return Number(out.trim().split('\n')[0]);
}

describe('--storage-driver fuse', () => {
  it('runs the same workload as overlay and leaves the same changes (corral diff)', async () => {
    const runs: Record<string, { out: string; diff: string }> = {};
    for (const driver of ['overlay', 'fuse']) {
      const run = await s.corral([
        'run',
        '--name',
        `w-${driver}`,
        '--storage-driver',
        driver,
        'busybox',
        'sh',
        '-c',
        WORKLOAD,
      ]);
      expect(run.stderr).toBe('');
      expect(run.status).toBe(0);
      const diff = await s.corral(['diff', `w-${driver}`]);
      expect(diff.status).toBe(0);
      runs[driver] = { out: run.stdout, diff: diff.stdout };
    }
    expect(runs.fuse).toEqual(runs.overlay);
    expect(runs.fuse.diff).toContain('D /etc/group');
    expect(runs.fuse.diff).toContain('A /work/pkgs/q49/f49.js');
    await s.corral(['rm', 'w-overlay', 'w-fuse']);
    expect(s.mounts()).toEqual([]);
    // Thousands of files through the FUSE server: 15 s on a quiet machine, minutes on a loaded one.
  }, 300_000);

  it('runs a --rootfs folder of our own', async () => {
    const rootfs = busyboxRootfs(join(s.root, 'my-rootfs'), 'etc', 'tmp', 'proc', 'dev', 'sys');
    const r = await s.corral([
      'run',
      '--rm',
      '--storage-driver',
      'fuse',
      '--rootfs',
      rootfs,
      'sh',
      '-c',
      'echo in fuse > /tmp/x && cat /tmp/x && grep " / " /proc/mounts',
    ]);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('in fuse');
    expect(r.stdout).toContain('fuse.corral-unionfs');
  });

  it("reports the container failed when its root's server dies; rm cleans up", async () => {
    const id = (
      await s.corral([
        'run',
        '-d',
        '--name',
        'orphan',
        '--storage-driver',
        'fuse',
        'busybox',
        'sleep',
        '1000',
      ])
    ).out;
    const server = serverOf(id);
    expect(server).toBeGreaterThan(0);
    // This test started the server (through corral); it ends it, by its pid.
    process.kill(server, 'SIGKILL');
    await until(
      async () => (await s.corral(['ps', '-a'])).out.match(/Exited \(137\).*orphan/),
      'the failure',
    );
    const inspect = JSON.parse((await s.corral(['inspect', 'orphan'])).stdout)[0];
    expect(inspect.state.error).toMatch(/storage server .* ended/);
    expect((await s.corral(['rm', 'orphan'])).status).toBe(0);
    expect(s.mounts()).toEqual([]);
  });
});
