// vforkExec: JavaScript of this process run in a clone(CLONE_VM | CLONE_VFORK) child that then
// execs, and the trampoline that child execs first. The process must stay whole after many.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import {
  CLONE,
  clearCloexec,
  MS,
  mount,
  setUserRaw,
  TRAMPOLINE_ARGV0,
  trampolineFd,
  vforkExec,
  waitpid,
} from '../dist/index.js';

const sh = (script: string) => ({
  path: '/bin/sh',
  argv: ['sh', '-c', script],
  envp: ['PATH=/bin:/usr/bin'],
});

describe('vforkExec', () => {
  it('runs JS in a child that is PID 1 of a new PID namespace, mounts its /proc, then execs', () => {
    let seen = '';
    const { pid, execErrno } = vforkExec(CLONE.NEWPID | CLONE.NEWNS, () => {
      mount(null, '/', null, MS.REC | MS.PRIVATE, null);
      mount('proc', '/proc', 'proc', 0, null);
      seen = readFileSync('/proc/self/stat', 'utf8').split(' ')[0];
      return sh('test $$ = 1 && test "$(cut -d" " -f1 /proc/1/stat)" = 1 && exit 7');
    });
    expect(execErrno).toBeNull();
    expect(seen).toBe('1'); // memory is shared: what the child wrote is here
    expect(waitpid(pid)?.code).toBe(7);
  });

  it('exits with the code the child returns, and reports an execve that failed', () => {
    const failed = vforkExec(0, () => 42);
    expect(failed.execErrno).toBeNull();
    expect(waitpid(failed.pid)?.code).toBe(42);
    const missing = vforkExec(0, () => ({ path: '/no/such/program', argv: ['x'], envp: [] }));
    expect(missing.execErrno).toBe(2); // ENOENT
    expect(waitpid(missing.pid)?.code).toBe(127);
    // A child that throws exits 125 (and must not: it should catch and return a code).
    const threw = vforkExec(0, () => {
      throw new Error('setup failed');
    });
    expect(waitpid(threw.pid)?.code).toBe(125);
    // So does one whose target cannot be read.
    const bad = vforkExec(0, () => ({
      path: '/bin/true',
      argv: ['true'],
      envp: null as unknown as string[],
    }));
    expect(waitpid(bad.pid)?.code).toBe(125);
  });

  it('changes ids with raw syscalls for the child alone; the program has default signals', () => {
    const { pid } = vforkExec(0, () => {
      setUserRaw(65534, 65534, [65534]);
      for (const fd of [0, 1, 2]) clearCloexec(fd);
      // Nothing ignored but what glibc's 32 and 33 were here (as inherited, as under runc).
      return sh(
        'test "$(id -u):$(id -g)" = 65534:65534 && grep -q "^SigIgn:\t0000000[01][08]0000000$" /proc/self/status',
      );
    });
    expect(waitpid(pid)?.code).toBe(0);
    expect(process.getuid?.()).toBe(0); // this process (all its threads) kept its ids
    expect(readFileSync('/proc/self/status', 'utf8')).toMatch(/^Uid:\t0\t0\t0\t0$/m);
  });

  it('the trampoline execs argv[1] only when argv[0] is its marker', () => {
    const fd = trampolineFd();
    const run = (argv: string[]) => waitpid(vforkExec(0, () => ({ fd, argv, envp: [] })).pid)?.code;
    expect(run([TRAMPOLINE_ARGV0, '/bin/sh', 'sh', '-c', 'exit 3'])).toBe(3);
    expect(run([TRAMPOLINE_ARGV0, '/no/such', 'x'])).toBe(127);
    expect(run(['/proc/self/exe', '/bin/sh', 'sh', '-c', 'exit 3'])).toBe(126); // entered again
    // Sealed: it cannot be written.
    expect(() => readFileSync(`/proc/self/fd/${fd}`)).not.toThrow();
    expect(() => writeFileSync(`/proc/self/fd/${fd}`, 'x')).toThrow();
  });

  it('1000 children, a GC in some: this process keeps running JS, timers and async I/O, no fd left', async () => {
    const fds = readdirSync('/proc/self/fd').length;
    let ran = 0;
    for (let i = 0; i < 1000; i++) {
      const { pid } = vforkExec(0, () => {
        ran++;
        if (i % 100 === 0) {
          const junk = Array.from({ length: 5000 }, (_, j) => ({ j, s: 'x'.repeat(j % 40) }));
          if (junk.length !== 5000) return 1;
          globalThis.gc?.();
        }
        return { path: '/bin/true', argv: ['true'], envp: [] };
      });
      expect(waitpid(pid)?.code).toBe(0);
      expect(() => JSON.parse('{')).toThrow(SyntaxError);
    }
    expect(ran).toBe(1000);
    expect(readdirSync('/proc/self/fd').length).toBeLessThanOrEqual(fds + 1); // + the trampoline's
    expect(await new Promise((r) => setTimeout(() => r('timer'), 1))).toBe('timer');
    expect(await readFile('/proc/self/status', 'utf8')).toContain('Name:');
  });
});
