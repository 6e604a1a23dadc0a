import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type Cgroup, CgroupError, CgroupLimitError, type CgroupLimits } from '../src/index.js';
import { alive, counter, Scope, sleep, until } from './helpers.js';

export interface Backend {
  /** Opens a cgroup by name beneath our own. */
  open(scope: Scope, name: string, opts?: { timeoutMs?: number }): Cgroup;
  /** Called before each test with its scope (the scratch backend makes its tree here). */
  begin?(scope: Scope): void;
  /** Called right after create() (the scratch kernel fills the new directory). */
  created?(cg: Cgroup): void;
  /** Limits this backend can enforce here, with what limits() should read back. */
  limits?: { apply: CgroupLimits; readBack: CgroupLimits };
  /** Whether /proc/PID/cgroup reflects membership (false for a scratch tree). */
  real: boolean;
}

/** The behaviour every backend owes the Cgroup interface, written once. */
export function conformance(label: string, setup: () => Backend | null): void {
  describe(label, () => {
    const scope = new Scope();
    const backend = setup();
    beforeEach(() => backend?.begin?.(scope));
    afterEach(() => scope.cleanup());
    const run = backend ? it : it.skip;

    const make = (name = scope.name()): Cgroup => {
      const cg = scope.track(backend!.open(scope, name));
      cg.create();
      backend!.created?.(cg);
      return cg;
    };

    run(
      'creates the cgroup beneath our own, refuses to take over an existing one, and removes it',
      async () => {
        const cg = make();
        expect(cg.exists()).toBe(true);
        for (const dir of Object.values(cg.dirs)) expect(existsSync(dir)).toBe(true);
        let err: unknown;
        try {
          cg.create();
        } catch (e) {
          err = e;
        }
        expect(err).toBeInstanceOf(CgroupError);
        expect((err as CgroupError).code).toBe('EXISTS');
        await cg.remove();
        expect(cg.exists()).toBe(false);
        for (const dir of Object.values(cg.dirs)) expect(existsSync(dir)).toBe(false);
        await cg.remove(); // twice is fine
      },
    );

    run('adds a process and lists it', async () => {
      const cg = make();
      const p = scope.held('exec sleep 60');
      cg.addProcess(p.pid);
      expect(cg.processes()).toEqual([p.pid]);
      if (backend!.real) {
        const own = readFileSync(`/proc/${p.pid}/cgroup`, 'utf8');
        for (const path of Object.values(cg.paths)) expect(own).toContain(`:${path}\n`);
      }
      p.release();
      await cg.killAll();
      expect((await p.exited).signal).toBe('SIGKILL');
    });

    run(
      'moves a process off the event loop, and out of a cgroup made for it to a sibling (from)',
      async () => {
        const parking = make();
        const p = scope.held('exec sleep 60');
        await parking.addProcessAsync(p.pid);
        expect(parking.processes()).toEqual([p.pid]);
        const sibling = make();
        // A sibling is not deeper than where the process is: refused, unless it came from there.
        if (backend!.real)
          expect(() => sibling.addProcess(p.pid)).toThrow(/deeper into their own cgroup subtree/);
        await sibling.addProcessAsync(p.pid, { from: parking });
        expect([sibling.processes(), parking.processes()]).toEqual([[p.pid], backend!.real ? [] : [p.pid]]);
        if (backend!.real) {
          const own = readFileSync(`/proc/${p.pid}/cgroup`, 'utf8');
          for (const path of Object.values(sibling.paths)) expect(own).toContain(`:${path}\n`);
          // `from` vouches for its own cgroup only: from the sibling nothing goes back up.
          expect(() => parking.addProcess(p.pid, { from: parking })).toThrow(/deeper/);
        }
        p.release();
        await sibling.killAll();
      },
    );

    run('freeze stops a counting loop and thaw resumes it', async () => {
      const cg = make();
      const file = join(scope.tmp(), 'count');
      const p = scope.held(`i=0; while :; do i=$((i+1)); echo $i > ${file}; done`);
      cg.addProcess(p.pid);
      p.release();
      await until(() => counter(file) > 10, 'the loop to count');
      await cg.freeze();
      const a = counter(file);
      await sleep(300);
      const b = counter(file);
      // One write may have been in flight when the freeze landed.
      expect(b - a).toBeLessThanOrEqual(1);
      await sleep(300);
      expect(counter(file)).toBe(b);
      await cg.thaw();
      await until(() => counter(file) > b + 10, 'the loop to count again');
    });

    run('killAll leaves no process behind, forks included', async () => {
      const cg = make();
      const p = scope.held('sleep 60 & sleep 60 & sleep 60 & wait');
      cg.addProcess(p.pid);
      p.release();
      const pids = await until(
        () => (cg.processes().length === 4 ? cg.processes() : null),
        'four processes in the cgroup',
      );
      await cg.killAll();
      expect(cg.processes()).toEqual([]);
      for (const pid of pids) await until(() => !alive(pid), `process ${pid} to end`);
      expect((await p.exited).signal).toBe('SIGKILL');
      await cg.remove();
      expect(cg.exists()).toBe(false);
    });

    run('remove refuses while processes live; a second handle sees the same cgroup', async () => {
      const name = scope.name();
      const cg = make(name);
      const p = scope.held('exec sleep 60');
      cg.addProcess(p.pid);
      // Another process (say `corral rm`) opens the cgroup by name; it does not remove it behind a live process.
      const other = backend!.open(scope, name, { timeoutMs: 200 });
      expect(other.exists()).toBe(true);
      expect(other.processes()).toEqual([p.pid]);
      await expect(other.remove()).rejects.toMatchObject({ code: 'EBUSY' });
      expect(cg.exists()).toBe(true);
      p.release();
      await cg.killAll();
      await cg.remove();
      expect(cg.exists()).toBe(false);
    });

    run('bad input gets typed errors and changes nothing', async () => {
      const cg = make();
      expect(() => cg.addProcess(-3)).toThrow(CgroupError);
      expect(() => cg.addProcess(2 ** 22 + 1)).toThrow(/does not exist/);
      // An orphan: started by us, then re-parented away, so no longer ours to move.
      const p = scope.held('sleep 60 >/dev/null 2>&1 & echo $!');
      p.release();
      await p.closed;
      const orphan = Number(p.stdout().trim());
      scope.onCleanup(() => {
        if (alive(orphan)) process.kill(orphan, 'SIGKILL');
      });
      expect(() => cg.addProcess(orphan)).toThrow(/not started by this process/);
      expect(cg.processes()).toEqual([]);
      expect(() => cg.apply({ memory: 1024 })).toThrow(CgroupLimitError);
      expect(() => cg.apply({ cpusetCpus: '0-4096' })).toThrow(/not available/);
      expect(() => cg.apply({ cpuShares: -5 })).toThrow(/between 2 and 262144/);
      expect(() => cg.apply({ wrong: 1 } as unknown as CgroupLimits)).toThrow(/unknown limit wrong/);
      expect(() => backend!.open(scope, '../escape')).toThrow(/'\.' and '\.\.'/);
      expect(() => backend!.open(scope, '/')).toThrow(/our own cgroup/);
    });

    if (backend?.limits) {
      const { apply, readBack } = backend.limits;
      it('applies limits and reads back the ones in force', () => {
        const cg = make();
        const before = cg.limits();
        expect(() => cg.apply({ ...apply, memory: 5 * 1024 * 1024 })).toThrow(
          /Minimum memory limit allowed is 6MB/,
        );
        expect(cg.limits()).toEqual(before); // a refused set leaves everything as it was
        cg.apply(apply);
        expect(cg.limits()).toMatchObject(readBack);
      });
    }
  });
}
