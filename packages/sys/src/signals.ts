import { constants } from 'node:os';

const byName = constants.signals as Record<string, number>;
const SIGRTMIN = 34;
const SIGRTMAX = 64;

/**
 * The number of a signal given as `TERM`, `SIGTERM`, `sigterm`, `15` or `RTMIN+3`.
 * Throws a TypeError naming the input when it is not a Linux signal.
 */
export function parseSignal(input: string | number): number {
  if (typeof input === 'number') {
    if (Number.isInteger(input) && input >= 1 && input <= SIGRTMAX) return input;
    throw new TypeError(`invalid signal: ${input}`);
  }
  const s = input.trim().toUpperCase();
  if (/^\d+$/.test(s)) return parseSignal(Number(s));
  const name = s.startsWith('SIG') ? s : `SIG${s}`;
  const rt = /^SIGRT(MIN|MAX)([+-]\d+)?$/.exec(name);
  if (rt) {
    const n = (rt[1] === 'MIN' ? SIGRTMIN : SIGRTMAX) + Number(rt[2] ?? 0);
    if (n >= SIGRTMIN && n <= SIGRTMAX) return n;
  } else if (byName[name] !== undefined) {
    return byName[name];
  }
  throw new TypeError(`invalid signal: ${input}`);
}

/** The name of a signal number (`SIGTERM`), or `SIG<n>` for one without a name. */
export function signalName(signo: number): string {
  for (const [name, n] of Object.entries(byName)) if (n === signo) return name;
  if (signo >= SIGRTMIN && signo <= SIGRTMAX) return `SIGRTMIN+${signo - SIGRTMIN}`;
  return `SIG${signo}`;
}
