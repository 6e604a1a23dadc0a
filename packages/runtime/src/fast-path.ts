// Whether `run` can take its fast path (fast-run.ts): the container built by a vfork child of
// the runtime instead of a Node init of its own. Light on purpose: cli/early.ts asks before
// it starts an init ahead, and must not load the runtime to do so.
import { INIT_ANNOTATION, type OciSpec } from './spec.js';

/** Namespaces the vfork child may join by path (fast-run.ts); the others are made new. */
export const FAST_JOINABLE: ReadonlySet<string> = new Set(['network', 'ipc', 'uts']);

export interface FastPathFlags {
  detach?: boolean;
  noPivot?: boolean;
}

/**
 * Null when `run` can build this container in a vfork child, or why it cannot: what needs an
 * init that outlives the command (-d) or waits between create and start (hooks), what the
 * child does not do (a terminal, joining a PID, mount, user or cgroup namespace by path,
 * --init, sysctl, --no-pivot). CORRAL_RUNTIME_FAST=0 turns the fast path off.
 */
export function fastRunRefusal(spec: OciSpec, flags: FastPathFlags = {}): string | null {
  if (process.env.CORRAL_RUNTIME_FAST === '0') return 'turned off by CORRAL_RUNTIME_FAST=0';
  if (process.arch !== 'x64') return `not on ${process.arch}`;
  if (flags.detach) return 'detached';
  if (flags.noPivot) return '--no-pivot';
  if (spec.process?.terminal) return 'a terminal';
  if (Object.values(spec.hooks ?? {}).some((h) => Array.isArray(h) && h.length > 0)) return 'hooks';
  const nss = spec.linux?.namespaces ?? [];
  if (!nss.some((n) => n.type === 'pid')) return 'no pid namespace';
  // The child joins a network, IPC or UTS namespace by path (setns): what the engine's
  // containers have (a network namespace made ahead, `--network container:`).
  const byPath = nss.find((n) => n.path && !FAST_JOINABLE.has(n.type));
  if (byPath) return `a ${byPath.type} namespace joined by path`;
  if (nss.some((n) => n.type === 'user' || n.type === 'time'))
    return `a ${nss.find((n) => n.type === 'user' || n.type === 'time')?.type} namespace`;
  if (spec.annotations?.[INIT_ANNOTATION] === 'true') return 'an init supervisor';
  if (Object.keys(spec.linux?.sysctl ?? {}).length) return 'sysctl';
  return null;
}
