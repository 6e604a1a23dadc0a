import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { CgroupError } from './errors.js';

/** The content of a cgroup file, trimmed; null when the file does not exist. */
export function readControl(path: string): string | null {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new CgroupError(
      (e as NodeJS.ErrnoException).code ?? 'EIO',
      `cannot read ${path}: ${(e as Error).message}`,
      path,
      { cause: e },
    );
  }
}

/** A number from a cgroup file; `max` and a missing file give null. */
export function readNumber(path: string): number | null {
  const v = readControl(path);
  if (v === null || v === '' || v === 'max') return null;
  return Number(v);
}

/** `key value` lines (memory.stat, cpu.stat, memory.events, cgroup.events) as a map. */
export function readKeyed(path: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of (readControl(path) ?? '').split('\n')) {
    const [k, v] = line.trim().split(/\s+/);
    if (k && v !== undefined) out.set(k, Number(v));
  }
  return out;
}

/** PIDs listed in a cgroup.procs file. */
export function readPids(path: string): number[] {
  return (readControl(path) ?? '').split('\n').filter(Boolean).map(Number);
}

const hints: Record<string, string> = {
  EBUSY: 'the cgroup uses more than the new limit, or a child cgroup holds a tighter setting',
  EINVAL: 'the kernel refused the value',
  ENOSPC: 'no CPUs or memory nodes are set for the cgroup (cpuset), or a limit leaves no room',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  ENOENT: 'the file does not exist: the controller is not enabled for this cgroup',
  ESRCH: 'no such process',
  EOPNOTSUPP: 'the operation is not supported here',
};

/** Writes one value to a cgroup file; the error names the file, the value and a hint. */
export function writeControl(path: string, value: string | number): void {
  try {
    writeFileSync(path, String(value));
  } catch (e) {
    throw controlError(path, value, e);
  }
}

/** writeControl on libuv's thread pool, for a write the kernel may hold up (cgroup.procs). */
export async function writeControlAsync(path: string, value: string | number): Promise<void> {
  try {
    await writeFile(path, String(value));
  } catch (e) {
    throw controlError(path, value, e);
  }
}

function controlError(path: string, value: string | number, e: unknown): CgroupError {
  const code = (e as NodeJS.ErrnoException).code ?? 'EIO';
  return new CgroupError(
    code,
    `writing '${value}' to ${path} failed: ${code} (${hints[code] ?? (e as Error).message})`,
    path,
    { cause: e },
  );
}

export const exists = existsSync;

/** Polls `done` every few ms until it holds; throws a TIMEOUT CgroupError after `ms`. */
export async function waitFor(done: () => boolean, ms: number, what: string, path: string): Promise<void> {
  const until = Date.now() + ms;
  let delay = 1;
  while (!done()) {
    if (Date.now() > until)
      throw new CgroupError('TIMEOUT', `${what} did not happen within ${ms / 1000} s`, path);
    await sleep(delay);
    delay = Math.min(delay * 2, 50);
  }
}
