// Docker's restart policies as the keeper applies them (restart.ts): the parsing of --restart,
// the decision after an exit, and the back-off. The keeper's restarts of real containers are
// tested end to end in apps/cli/test/keeper.test.ts and apps/daemon/test/restart-policy.test.ts.
import { describe, expect, it } from 'vitest';
import {
  BACKOFF_MAX_MS,
  checkRestartPolicy,
  nextDelay,
  parseRestartPolicy,
  shouldRestart,
} from '../src/restart.js';

describe('restart policies', () => {
  it('parses what --restart takes and refuses the rest with the flag named', () => {
    expect(parseRestartPolicy('no')).toEqual({ name: 'no', maximumRetryCount: 0 });
    expect(parseRestartPolicy('on-failure')).toEqual({ name: 'on-failure', maximumRetryCount: 0 });
    expect(parseRestartPolicy('on-failure:3')).toEqual({ name: 'on-failure', maximumRetryCount: 3 });
    expect(parseRestartPolicy('unless-stopped').name).toBe('unless-stopped');
    for (const bad of ['sometimes', 'always:2', 'on-failure:x', 'on-failure:-1', 'on-failure:1:2', ''])
      expect(() => parseRestartPolicy(bad)).toThrow(/invalid restart policy/);
    expect(() => checkRestartPolicy({ name: 'always', maximumRetryCount: 2 })).toThrow(/cannot be used/);
    expect(checkRestartPolicy({ name: '' })).toEqual({ name: 'no', maximumRetryCount: 0 });
  });

  it("decides as Docker's restart manager", () => {
    const exited = (exitCode: number, restartCount = 0, stopRequested = false) => ({
      exitCode,
      restartCount,
      stopRequested,
    });
    const onFailure2 = parseRestartPolicy('on-failure:2');
    expect(shouldRestart(onFailure2, exited(1, 0))).toBe(true);
    expect(shouldRestart(onFailure2, exited(1, 1))).toBe(true);
    expect(shouldRestart(onFailure2, exited(1, 2))).toBe(false); // N restarts, not N + 1
    expect(shouldRestart(onFailure2, exited(0, 0))).toBe(false);
    expect(shouldRestart(parseRestartPolicy('on-failure'), exited(1, 1000))).toBe(true);
    expect(shouldRestart(parseRestartPolicy('always'), exited(0))).toBe(true);
    expect(shouldRestart(parseRestartPolicy('unless-stopped'), exited(137))).toBe(true);
    expect(shouldRestart(parseRestartPolicy('always'), exited(0, 0, true))).toBe(false); // stop / kill
    expect(shouldRestart(parseRestartPolicy('no'), exited(1))).toBe(false);
    expect(shouldRestart(undefined, exited(1))).toBe(false);
  });

  it('backs off from 100 ms, doubling to a minute, and starts again after 10 s of running', () => {
    const delays: number[] = [];
    let d = 0;
    for (let i = 0; i < 12; i++) {
      d = nextDelay(d, 50);
      delays.push(d);
    }
    expect(delays.slice(0, 5)).toEqual([100, 200, 400, 800, 1600]);
    expect(Math.max(...delays)).toBe(BACKOFF_MAX_MS);
    expect(nextDelay(BACKOFF_MAX_MS, 10_000)).toBe(100);
  });
});
