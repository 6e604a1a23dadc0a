// The docker CLI's run settings through corrald (HostConfig.Ulimits, Devices, GroupAdd, ShmSize,
// Sysctls, OomScoreAdj, LogConfig, Config.Labels, Healthcheck, ?filters={"label":[...]}),
// checked from inside the container and in inspect.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Cleanups, until } from '@corral/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Daemon, startDaemon } from './daemon.js';

const c = new Cleanups();
let d: Daemon;

beforeAll(async () => {
  d = await startDaemon(c);
});
afterAll(() => c.run());

const must = (args: string[]) => d.must(args);

describe('docker run settings through corrald', () => {
  it('ulimits, env-file, group-add, shm-size, sysctls, oom-score-adj and a device reach the program', async () => {
    const env = join(d.root, '..', 'app.env');
    writeFileSync(env, 'A=from-file\n# c\nB=two words\n');
    const r = await must([
      'run',
      '--rm',
      '--ulimit',
      'nofile=1000:2000',
      '--env-file',
      env,
      '--group-add',
      '4242',
      '--shm-size',
      '128m',
      '--sysctl',
      'kernel.shmmax=123456',
      '--oom-score-adj',
      '300',
      '--device',
      '/dev/fuse:/dev/xfuse',
      'busybox',
      'sh',
      '-c',
      'ulimit -n; ulimit -Hn; echo "$A|$B"; id -G; df -k /dev/shm | tail -1; cat /proc/sys/kernel/shmmax /proc/self/oom_score_adj; exec 3<>/dev/xfuse && echo opened',
    ]);
    const lines = r.stdout.trim().split('\n');
    expect(lines.slice(0, 3)).toEqual(['1000', '2000', 'from-file|two words']);
    expect(lines[3].split(' ')).toContain('4242');
    expect(lines[4]).toMatch(/^shm\s+131072\s/);
    expect(lines.slice(5)).toEqual(['123456', '300', 'opened']);
  });

  it('refuses a ulimit above the hard limit and a host sysctl with a 400 naming it, nothing created', async () => {
    const before = (await must(['ps', '-aq'])).stdout;
    const hi = await d.docker(['run', '--rm', '--ulimit', 'nofile=1048576:1048576', 'busybox', 'true']);
    expect(hi.status).toBe(125);
    expect(hi.stderr).toContain('--ulimit nofile');
    const sys = await d.docker(['run', '--rm', '--sysctl', 'kernel.pid_max=100000', 'busybox', 'true']);
    expect(sys.stderr).toContain('kernel.pid_max');
    expect((await must(['ps', '-aq'])).stdout).toBe(before);
  });

  it('labels filter ps; inspect shows labels, ulimits, log options and the health state', async () => {
    await must([
      'run',
      '-d',
      '--name',
      'web',
      '-l',
      'tier=web',
      '--log-opt',
      'max-size=1k',
      '--log-opt',
      'max-file=2',
      '--ulimit',
      'nproc=500',
      '--health-cmd',
      'false',
      '--health-interval',
      '200ms',
      '--health-retries',
      '1',
      'busybox',
      'sleep',
      '60',
    ]);
    await must(['run', '-d', '--name', 'db', '-l', 'tier=db', 'busybox', 'sleep', '60']);
    expect((await must(['ps', '--filter', 'label=tier=web', '--format', '{{.Names}}'])).stdout.trim()).toBe(
      'web',
    );
    expect(
      (await must(['ps', '--filter', 'label=tier', '--format', '{{.Names}}'])).stdout
        .trim()
        .split('\n')
        .sort(),
    ).toEqual(['db', 'web']);
    const inspect = async () => JSON.parse((await must(['inspect', 'web'])).stdout)[0];
    await until(async () => (await inspect()).State.Health?.Status === 'unhealthy', 'web unhealthy');
    const i = await inspect();
    expect(i.Config.Labels).toEqual({ tier: 'web' });
    expect(i.Config.Healthcheck.Test).toEqual(['CMD-SHELL', 'false']);
    expect(i.HostConfig.Ulimits).toEqual([{ Name: 'nproc', Soft: 500, Hard: 500 }]);
    expect(i.HostConfig.LogConfig).toEqual({
      Type: 'json-file',
      Config: { 'max-size': '1k', 'max-file': '2' },
    });
    expect(i.State.Health.Log.at(-1).ExitCode).toBe(1);
    expect((await must(['ps', '--filter', 'name=web', '--format', '{{.Status}}'])).stdout).toContain(
      '(unhealthy)',
    );
    await must(['rm', '-f', 'web', 'db']);
  });
});
