import { arch } from 'node:process';
import { check, fn } from './libc.js';

const NR_KEYCTL: Record<string, number> = { x64: 250, arm64: 219 };
const KEYCTL_JOIN_SESSION_KEYRING = 1;

/**
 * Joins a new session keyring named `name` (keyctl KEYCTL_JOIN_SESSION_KEYRING), so that the
 * process and what it execs no longer share the caller's session keyring (runc does this for
 * every container unless --no-new-keyring). Returns the keyring's serial.
 */
export function joinSessionKeyring(name: string): number {
  const nr = NR_KEYCTL[arch];
  if (nr === undefined) throw new Error(`@corral/sys: no keyctl syscall number on ${arch}`);
  return Number(check('keyctl', fn.sys_i_s_u(nr, KEYCTL_JOIN_SESSION_KEYRING, name, 0), [name]));
}
