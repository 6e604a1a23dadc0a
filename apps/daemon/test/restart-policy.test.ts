// HostConfig.RestartPolicy through corrald with the docker CLI: the container's keeper
// restarts it (Docker's back-off), inspect has RestartCount and the policy, `docker stop`
// ends restarting, and a bad policy is a 400 with nothing created.
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
const inspect = async (name: string) => JSON.parse((await must(['inspect', name])).stdout)[0];

describe('docker run --restart through corrald', () => {
  it('on-failure:2 restarts a failing container twice, then it stays exited', async () => {
    await must([
      'run',
      '-d',
      '--name',
      'flaky',
      '--restart',
      'on-failure:2',
      'busybox',
      'sh',
      '-c',
      'echo try; exit 3',
    ]);
    await until(async () => {
      const r = await inspect('flaky');
      return r.RestartCount === 2 && r.State.Status === 'exited';
    }, 'two restarts, then the end');
    const r = await inspect('flaky');
    expect(r.HostConfig.RestartPolicy).toEqual({ Name: 'on-failure', MaximumRetryCount: 2 });
    expect(r.State.ExitCode).toBe(3);
    expect((await must(['logs', 'flaky'])).stdout.trim().split('\n')).toEqual(['try', 'try', 'try']);
  });

  it('always: restarting shows in ps, docker stop ends it', async () => {
    await must(['run', '-d', '--name', 'again', '--restart', 'always', 'busybox', 'true']);
    await until(async () => (await inspect('again')).RestartCount >= 2, 'two restarts');
    await until(
      async () => (await must(['ps', '-a', '--filter', 'name=again'])).stdout.includes('Restarting (0)'),
      'Restarting (0) in docker ps',
    );
    await must(['stop', 'again']);
    const count = (await inspect('again')).RestartCount;
    await new Promise((r) => setTimeout(r, 1500));
    const r = await inspect('again');
    expect(r.RestartCount).toBe(count);
    expect(r.State.Restarting).toBe(false);
    expect(r.State.Status).toBe('exited');
  });

  it('a bad policy is refused with a 400 naming it, nothing created', async () => {
    const before = (await must(['ps', '-aq'])).stdout;
    const bad = await d.docker(['run', '-d', '--restart', 'always:3', 'busybox', 'true']);
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/maximum retry count|restart/i);
    expect((await must(['ps', '-aq'])).stdout).toBe(before);
  });
});
