import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { Cleanups } from '@corral/testkit';
import type { Cgroup } from '../src/index.js';

/** Everything a test made, undone in afterEach even when the test failed. */
export class Scope {
  private readonly cgroups: Cgroup[] = [];
  private readonly children: ChildProcess[] = [];
  private readonly cleanups = new Cleanups();

  tmp(): string {
    return this.cleanups.tempDir('cgroups');
  }

  /** A cgroup name no other test (or test run) uses. */
  name(): string {
    return `corral-test-${process.pid}-${Math.random().toString(36).slice(2, 10)}`;
  }

  track<T extends Cgroup>(cg: T): T {
    this.cgroups.push(cg);
    return cg;
  }

  onCleanup(fn: () => void | Promise<void>): void {
    this.cleanups.add(fn);
  }

  /**
   * Starts `sh -c 'read x; <script>'`: the shell waits on stdin, so the test can put its PID
   * in a cgroup before anything of the script runs, then release() it.
   */
  held(script: string): Held {
    const child = spawn('sh', ['-c', `read x; ${script}`], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.children.push(child);
    let stderr = '';
    let stdout = '';
    child.stderr!.on('data', (d) => {
      stderr += d;
    });
    child.stdout!.on('data', (d) => {
      stdout += d;
    });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.on('exit', (code, signal) => resolve({ code, signal })),
    );
    // 'close' comes once stdout and stderr are drained (exit may come first).
    const closed = new Promise<void>((resolve) => child.on('close', () => resolve()));
    return {
      pid: child.pid!,
      release: () => child.stdin!.end('go\n'),
      exited,
      closed,
      stderr: () => stderr,
      stdout: () => stdout,
    };
  }

  async cleanup(): Promise<void> {
    const errors: unknown[] = [];
    for (const cg of this.cgroups.splice(0).reverse()) {
      try {
        if (cg.exists()) {
          await cg.thaw().catch(() => {});
          await cg.killAll();
        }
        await cg.remove();
      } catch (e) {
        errors.push(e);
      }
    }
    for (const c of this.children.splice(0))
      if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await this.cleanups.run().catch((e) => errors.push(e));
    if (errors.length) throw errors[0];
  }
}

export interface Held {
  pid: number;
  release(): void;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves when the output is complete: every holder of the pipes (forks too) is gone. */
  closed: Promise<void>;
  stderr(): string;
  stdout(): string;
}

/** The number a counting loop last wrote to `file` (0 before its first write). */
export function counter(file: string): number {
  if (!existsSync(file)) return 0;
  return Number(readFileSync(file, 'utf8').trim() || 0);
}

/** True while `pid` runs (a zombie counts as gone). */
export function alive(pid: number): boolean {
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}
export { until } from '@corral/testkit';
export { sleep };
