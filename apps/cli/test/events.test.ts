import { afterAll, describe, expect, it } from 'vitest';
import { Sandbox } from './helpers.js';

const s = new Sandbox();
afterAll(() => s.teardown());

describe('corral events', () => {
  it("prints Docker's events of a run, filtered, as text or JSON", async () => {
    expect((await s.corral(['run', '--rm', '--name', 'ev', 'busybox', 'true'])).status).toBe(0);
    const json = await s.corral([
      'events',
      '--since',
      '1m',
      '--until',
      '0s',
      '--format',
      'json',
      '-f',
      'container=ev',
    ]);
    expect(json.status, json.stderr).toBe(0);
    const actions = json.out.split('\n').map((l) => JSON.parse(l).Action);
    expect(actions).toEqual(['create', 'start', 'die', 'destroy']);
    const text = await s.corral(['events', '--since', '1m', '--until', '0s', '--filter', 'event=die']);
    expect(text.out).toMatch(/^\S+Z container die [0-9a-f]{64} \(exitCode=0, image=busybox, name=ev\)$/m);
    const bad = await s.corral(['events', '--filter', 'nonsense']);
    expect(bad.status).toBe(1);
  });
});
