import { readdirSync, readFileSync, rmdirSync } from 'node:fs';
import { posix } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { isErrno, kill } from '@corral/sys';
import { CgroupError } from './errors.js';
import { waitFor } from './files.js';
import { isAncestorOrSelf } from './host.js';

/**
 * Resolves a cgroup path like runc: absolute as given, relative beneath `parent` or our own
 * cgroup. Refuses `.`/`..` segments and any path that is our own cgroup or above it.
 */
export function resolveCgroupPath(own: string, path: string, parent?: string): string {
  for (const [what, p] of [
    ['path', path],
    ['parent', parent],
  ] as const) {
    if (p === undefined) continue;
    if (p === '' || p.split('/').some((seg) => seg === '.' || seg === '..') || p.includes('\0'))
      throw new CgroupError(
        'EINVAL',
        `invalid cgroup ${what} '${p}': want a name or a path without '.' and '..' segments`,
      );
  }
  if (posix.isAbsolute(path) && parent !== undefined)
    throw new CgroupError(
      'EINVAL',
      `cgroup path '${path}' is absolute, so a parent ('${parent}') cannot apply: give one or the other`,
    );
  let base = own;
  if (parent !== undefined) base = posix.isAbsolute(parent) ? parent : posix.join(own, parent);
  const resolved =
    posix.normalize(posix.isAbsolute(path) ? path : posix.join(base, path)).replace(/\/+$/, '') || '/';
  if (isAncestorOrSelf(resolved, own))
    throw new CgroupError(
      'OUTSIDE',
      `cgroup path '${resolved}' is our own cgroup (${own}) or above it: pick a path beneath it`,
    );
  return resolved;
}

/** The directories from `top` (exclusive) down to `dir` (inclusive). */
export function dirsBetween(top: string, dir: string): string[] {
  const rel = posix.relative(top, dir);
  if (rel === '' || rel.startsWith('..')) return [];
  const out: string[] = [];
  let cur = top;
  for (const seg of rel.split('/')) {
    cur = posix.join(cur, seg);
    out.push(cur);
  }
  return out;
}

/** `dir` and every directory beneath it, deepest first (the order rmdir needs). */
export function subtreeDeepestFirst(dir: string): string[] {
  const out: string[] = [];
  let entries: import('node:fs').Dirent[] = [];
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  for (const e of entries) if (e.isDirectory()) out.push(...subtreeDeepestFirst(posix.join(dir, e.name)));
  out.push(dir);
  return out;
}

/**
 * rmdir that retries while the kernel still tears the cgroup's tasks down (EBUSY); a missing
 * directory counts as removed. `beforeRmdir` may clear a scratch tree's plain files.
 */
export async function removeDir(
  dir: string,
  timeoutMs: number,
  beforeRmdir?: (dir: string) => void,
): Promise<void> {
  const until = Date.now() + timeoutMs;
  let delay = 1;
  for (;;) {
    try {
      beforeRmdir?.(dir);
      rmdirSync(dir);
      return;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? 'EIO';
      if (code === 'ENOENT') return;
      if (code !== 'EBUSY' || Date.now() > until)
        throw new CgroupError(
          code,
          `removing cgroup ${dir} failed: ${code}${code === 'EBUSY' ? ' (processes or child cgroups are still in it)' : ''}`,
          dir,
          { cause: e },
        );
    }
    await sleep(delay);
    delay = Math.min(delay * 2, 50);
  }
}

function parentPid(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm may hold spaces and parentheses: fields start after the last ')'.
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return null;
  }
}

/**
 * Checks that `pid` is a live process that we started (this process or a descendant): corral
 * moves no one else's processes into its cgroups.
 */
export function checkPid(pid: number): void {
  if (!Number.isSafeInteger(pid) || pid <= 0)
    throw new CgroupError('EINVAL', `invalid pid ${pid}: want a positive whole number`);
  if (parentPid(pid) === null) throw new CgroupError('ESRCH', `process ${pid} does not exist`);
  let cur: number | null = pid;
  for (let hops = 0; cur !== null && cur > 0 && hops < 4096; hops++) {
    if (cur === process.pid) return;
    cur = parentPid(cur);
  }
  throw new CgroupError(
    'NOTOURS',
    `process ${pid} was not started by this process (pid ${process.pid}): corral only moves its own processes into cgroups`,
  );
}

/** What an operation on a cgroup that is not made yet throws. */
export function notCreated(path: string): CgroupError {
  return new CgroupError('ENOENT', `cgroup ${path} does not exist: create() it first`);
}

/**
 * Where addProcess's rule sees a process that is at `path`: in `from`'s parent when it is in
 * `from` (a cgroup the caller made and put it in, see AddProcessOptions), else at `path`.
 */
export function placeOf(path: string, from: string | undefined): string {
  return from !== undefined && path === from ? posix.dirname(path) : path;
}

/** addProcess's rule: a process moves only deeper into its own cgroup subtree. */
export function checkBeneath(
  pid: number | 'self',
  current: string,
  target: string,
  where: string,
  dir: string,
): void {
  if (!isAncestorOrSelf(current, target))
    throw new CgroupError(
      'OUTSIDE',
      `process ${pid} is in ${where}${current}, which is not above ${target}: corral only moves processes deeper into their own cgroup subtree`,
      dir,
    );
}

/**
 * killAll's signalling: refuses a cgroup that holds the caller (signalling ourselves would end
 * it mid-way: such a cgroup is no container's), then signals each task; a task gone meanwhile
 * is no error.
 */
export function refuseSelf(pids: number[], path: string): void {
  if (pids.includes(process.pid))
    throw new CgroupError('SELF', `cgroup ${path} holds this process (${process.pid}): refusing to kill it`);
}

export function signalEach(pids: number[], signo: number): void {
  for (const pid of pids) {
    try {
      kill(pid, signo);
    } catch (e) {
      if (!isErrno(e, 'ESRCH')) throw e;
    }
  }
}

/** remove()'s wait for the last tasks to go (after an OOM kill the kernel may still be tearing them down). */
export async function waitForLeaving(
  empty: () => boolean,
  processes: () => number[],
  timeoutMs: number,
  path: string,
  dir: string,
): Promise<void> {
  try {
    await waitFor(empty, timeoutMs, 'leaving', dir);
  } catch {
    throw new CgroupError(
      'EBUSY',
      `cgroup ${path} still has processes ${processes().join(', ')}: killAll() them first`,
      dir,
    );
  }
}
