import { check, lazy, libc } from './libc.js';

const personality_ = lazy(() => ({ fn: libc.func('int personality(unsigned long persona)') }));

/** The execution domains of the OCI spec's linux.personality (LINUX32: `uname -m` says i686). */
export const PERSONALITY = { LINUX: 0x0000, LINUX32: 0x0008 } as const;

/** personality(2): sets this process's execution domain, which execve keeps. */
export function personality(persona: number): number {
  return check('personality', personality_.fn(persona), [persona]);
}
