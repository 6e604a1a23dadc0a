// Docker's restart policies (--restart, HostConfig.RestartPolicy), applied by the container's
// keeper so that restarts go on after the front-end that started it has gone.
import { EngineError } from './errors.js';

export type RestartPolicyName = 'no' | 'on-failure' | 'always' | 'unless-stopped';

/** Docker's HostConfig.RestartPolicy: a name, and for on-failure the most restarts (0: no limit). */
export interface RestartPolicy {
  name: RestartPolicyName;
  maximumRetryCount: number;
}

const NAMES: readonly RestartPolicyName[] = ['no', 'on-failure', 'always', 'unless-stopped'];

/** `no`, `on-failure[:N]`, `always`, `unless-stopped`, as `--restart` takes them. */
export function parseRestartPolicy(text: string): RestartPolicy {
  const [name, count, ...rest] = text.split(':');
  const bad = (why: string) =>
    new EngineError(
      'InvalidArgument',
      `invalid restart policy ${JSON.stringify(text)}: ${why} (no, on-failure[:max-retries], always, unless-stopped)`,
    );
  if (rest.length || !NAMES.includes(name as RestartPolicyName)) throw bad('unknown policy');
  if (count !== undefined && name !== 'on-failure')
    throw bad(`maximum retry count cannot be used with ${name}`);
  if (count !== undefined && !/^\d+$/.test(count))
    throw bad('the maximum retry count must be a whole number');
  return { name: name as RestartPolicyName, maximumRetryCount: count === undefined ? 0 : Number(count) };
}

/** Checks a policy given as data (corrald's HostConfig): Docker's names and rules. */
export function checkRestartPolicy(p: { name?: string; maximumRetryCount?: number }): RestartPolicy {
  const name = p.name || 'no';
  const count = p.maximumRetryCount ?? 0;
  if (!NAMES.includes(name as RestartPolicyName))
    throw new EngineError('InvalidArgument', `invalid restart policy ${JSON.stringify(name)}`);
  if (!Number.isInteger(count) || count < 0)
    throw new EngineError(
      'InvalidArgument',
      `invalid maximum retry count ${count}: a whole number, 0 or more`,
    );
  if (count > 0 && name !== 'on-failure')
    throw new EngineError(
      'InvalidArgument',
      `maximum retry count cannot be used with restart policy '${name}'`,
    );
  return { name: name as RestartPolicyName, maximumRetryCount: count };
}

/** What the keeper knows when the program has ended, to decide whether it comes back. */
export interface RestartInput {
  exitCode: number;
  /** Restarts so far. */
  restartCount: number;
  /** `stop` (or `rm`, `kill` by the engine on the way to removal) asked for the end. */
  stopRequested: boolean;
}

/** Docker's rules: whether the container is started again. */
export function shouldRestart(policy: RestartPolicy | undefined, s: RestartInput): boolean {
  if (!policy || policy.name === 'no' || s.stopRequested) return false;
  if (policy.name === 'always' || policy.name === 'unless-stopped') return true;
  if (s.exitCode === 0) return false;
  return policy.maximumRetryCount === 0 || s.restartCount < policy.maximumRetryCount;
}

/** Docker's back-off: 100 ms doubling on each restart, at most a minute. */
export const BACKOFF_START_MS = 100;
export const BACKOFF_MAX_MS = 60_000;
/** A run at least this long resets the back-off to its start. */
export const BACKOFF_RESET_AFTER_MS = 10_000;

/** The delay before the next start, given the previous delay (0 before the first restart) and how long the last run lasted. */
export function nextDelay(previousMs: number, ranForMs: number): number {
  if (previousMs === 0 || ranForMs >= BACKOFF_RESET_AFTER_MS) return BACKOFF_START_MS;
  return Math.min(previousMs * 2, BACKOFF_MAX_MS);
}
