// The spec's lifecycle hooks: programs run at fixed points with the container's state on their
// stdin. prestart, createRuntime, poststart and poststop run from the runtime; createContainer
// (in the container's namespaces, before pivot_root) and startContainer (inside the container,
// as its user, just before the program) run from the container's init. Synchronous: the init
// runs them from its main thread, the only one in the container's namespaces.
import { spawnSync } from 'node:child_process';
import type { OciHook, OciHooks } from './spec.js';

/** The state a hook reads on stdin (runtime spec "State"). */
export interface HookState {
  ociVersion: string;
  id: string;
  status: 'creating' | 'created' | 'running' | 'stopped';
  pid?: number;
  bundle: string;
  annotations?: Record<string, string>;
}

export class HookError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HookError';
  }
}

function envOf(env: readonly string[] = []): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of env) {
    const i = e.indexOf('=');
    if (i > 0) out[e.slice(0, i)] = e.slice(i + 1);
  }
  return out;
}

const clip = (s: string) => (s.length > 500 ? `${s.slice(0, 500)}...` : s).trim();

/** Runs one hook; throws a HookError saying how it failed (exit, signal, timeout). */
export function runHook(name: keyof OciHooks, index: number, hook: OciHook, state: HookState): void {
  const args = hook.args?.length ? hook.args : [hook.path];
  const r = spawnSync(hook.path, args.slice(1), {
    argv0: args[0],
    input: JSON.stringify(state),
    env: envOf(hook.env),
    encoding: 'utf8',
    timeout: hook.timeout ? hook.timeout * 1000 : undefined,
    killSignal: 'SIGKILL',
    maxBuffer: 1 << 20,
  });
  const what = `${name} hook #${index} (${hook.path})`;
  // spawnSync marks a timeout as ETIMEDOUT after killing the hook.
  if ((r.error as NodeJS.ErrnoException | undefined)?.code === 'ETIMEDOUT')
    throw new HookError(`${what}: timed out after ${hook.timeout} s`);
  // EPIPE: the hook ended without reading its state from stdin, which hooks may do (runc
  // ignores it too); its exit status below says whether it failed.
  if (r.error && (r.error as NodeJS.ErrnoException).code !== 'EPIPE')
    throw new HookError(`${what}: ${r.error.message}`);
  if (r.status !== 0) {
    const how = r.signal ? `killed by ${r.signal}` : `exit status ${r.status}`;
    const out = [r.stdout && `stdout: ${clip(r.stdout)}`, r.stderr && `stderr: ${clip(r.stderr)}`]
      .filter(Boolean)
      .join(', ');
    throw new HookError(`${what}: ${how}${out ? `, ${out}` : ''}`);
  }
}

/** Runs the hooks of one kind in order; the first failure stops them and is thrown. */
export function runHooks(hooks: OciHooks | undefined, name: keyof OciHooks, state: HookState): void {
  for (const [i, hook] of (hooks?.[name] ?? []).entries()) runHook(name, i, hook, state);
}

/** True when the spec has hooks of any of these kinds. */
export function hasHooks(hooks: OciHooks | undefined, ...names: (keyof OciHooks)[]): boolean {
  return names.some((n) => (hooks?.[n]?.length ?? 0) > 0);
}
