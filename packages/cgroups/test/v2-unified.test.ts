import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { CgroupV2, openCgroup, v2Mounts } from '../src/index.js';
import { type Backend, conformance } from './conformance.js';
import { Scope, sleep } from './helpers.js';

// The real cgroup2 mount. On a hybrid host it has no controllers, but processes, freeze, kill
// and cpu.stat are core v2 features: the same suite runs on it for real.
const v2 = (() => {
  try {
    return v2Mounts().length > 0 && readFileSync('/proc/self/cgroup', 'utf8').includes('0::');
  } catch {
    return false;
  }
})();

conformance('v2 backend on the real cgroup2 mount', (): Backend | null =>
  v2
    ? { real: true, open: (_scope, name, opts) => openCgroup({ path: name, backend: 'v2', ...opts }) }
    : null,
);

describe('v2 backend on the real cgroup2 mount', () => {
  const scope = new Scope();
  afterEach(() => scope.cleanup());
  const run = v2 ? it : it.skip;

  run('counts CPU time from cpu.stat and refuses limits the mount cannot enforce', async () => {
    const cg = scope.track(openCgroup({ path: scope.name(), backend: 'v2' }));
    expect(cg).toBeInstanceOf(CgroupV2);
    expect((cg as CgroupV2).scratch).toBe(false);
    cg.create();
    const p = scope.held('while :; do :; done');
    cg.addProcess(p.pid);
    p.release();
    await sleep(300);
    expect(cg.stats().cpu.total).toBeGreaterThan(0);
    const caps = cg.capabilities();
    for (const [limit, controller] of [
      [{ memory: 64 * 1024 * 1024 }, 'memory'],
      [{ pidsLimit: 5 }, 'pids'],
      [{ cpus: 0.5 }, 'cpu'],
    ] as const) {
      if (caps.controllers.includes(controller)) continue;
      expect(() => cg.apply(limit)).toThrow(new RegExp(`needs the ${controller} cgroup controller`));
    }
  });
});
