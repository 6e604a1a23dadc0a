import { constants } from 'node:os';

/** Made on first use: node:os is not loaded by a process that never names an errno. */
let errnoNames: Map<number, string> | undefined;

/** The symbolic name of an errno value (`EPERM`), or `E<number>` when unknown. */
export function errnoName(errno: number): string {
  if (!errnoNames) {
    errnoNames = new Map();
    for (const [name, num] of Object.entries(constants.errno))
      if (!errnoNames.has(num)) errnoNames.set(num, name);
  }
  return errnoNames.get(errno) ?? `E${errno}`;
}

/** The errno value of a symbolic name such as `ENOENT`. */
export function errnoValue(name: string): number {
  const v = (constants.errno as Record<string, number>)[name];
  if (v === undefined) throw new TypeError(`unknown errno name ${name}`);
  return v;
}

/**
 * A failed system call: which call, the errno (name and number) and the arguments that
 * matter, e.g. `mount(overlay, /x): EINVAL (22)`.
 */
export class SyscallError extends Error {
  readonly syscall: string;
  readonly errno: number;
  readonly code: string;
  readonly args: readonly unknown[];

  constructor(syscall: string, errno: number, args: readonly unknown[] = [], context?: string) {
    const code = errnoName(errno);
    const shown = args.map((a) => (typeof a === 'string' ? a : String(a))).join(', ');
    super(`${syscall}(${shown}): ${code} (${errno})${context ? `: ${context}` : ''}`);
    this.name = 'SyscallError';
    this.syscall = syscall;
    this.errno = errno;
    this.code = code;
    this.args = args;
  }
}

/** True when `e` is a SyscallError with one of the given errno names. */
export function isErrno(e: unknown, ...codes: string[]): e is SyscallError {
  return e instanceof SyscallError && codes.includes(e.code);
}

/**
 * What went wrong, as the front-ends need it: the CLI maps a kind to Docker's exit codes and
 * the daemon to Docker's HTTP statuses. `CannotStart` is a failure before the container's
 * program ran (Docker's 125), `NotExecutable` and `CommandNotFound` the program's own 126/127.
 */
export type ErrorKind =
  | 'NotFound'
  | 'Conflict'
  | 'InvalidArgument'
  | 'NotModified'
  | 'Forbidden'
  | 'Unavailable'
  | 'CannotStart'
  | 'NotExecutable'
  | 'CommandNotFound';

/**
 * What repairs a failure that no retry fixes, as data: the libraries name what is wrong and
 * which file, and each front-end words the remedy its own way (the CLI names its command).
 * `system-check`: state on disk is damaged; the data root's check with repair sets it aside.
 */
export type Repair = 'system-check';

/** Marks a CorralError of any copy of this class (see CorralError's hasInstance). */
const BRAND = Symbol.for('corral.CorralError');

/** The one base of the errors corral's libraries throw on purpose (engine, runtime). */
export class CorralError extends Error {
  get [BRAND](): boolean {
    return true;
  }

  readonly kind: ErrorKind;
  /** Set when the failure needs a repair of the stored state (see Repair). */
  readonly repair?: Repair;
  constructor(kind: ErrorKind, message: string, options: { repair?: Repair } = {}) {
    super(message);
    this.name = 'CorralError';
    this.kind = kind;
    if (options.repair) this.repair = options.repair;
  }
}

// `e instanceof CorralError` also for an error of another copy of this class: a process may
// load two bundles of corral's packages (the CLI's listing, and the Engine it opens for a
// reclaim: issue 15). Subclasses (EngineError) are tested as any class is.
Object.defineProperty(CorralError, Symbol.hasInstance, {
  value(this: new (...a: never[]) => unknown, x: unknown): boolean {
    if (this !== CorralError) return Function.prototype[Symbol.hasInstance].call(this, x);
    return typeof x === 'object' && x !== null && (x as { [BRAND]?: boolean })[BRAND] === true;
  },
});
