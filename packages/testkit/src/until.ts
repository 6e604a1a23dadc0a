import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Polls `cond` (sync or async) every `every` ms until it returns a truthy value, and returns
 * that value; fails with "timed out waiting for WHAT" after `ms`. Tests wait on conditions
 * this way, never on fixed sleeps.
 */
export async function until<T>(
  cond: () => T | Promise<T>,
  what: string,
  ms = 15_000,
  every = 25,
): Promise<NonNullable<Awaited<T>>> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await cond();
    if (v) return v as NonNullable<Awaited<T>>;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(every);
  }
}
