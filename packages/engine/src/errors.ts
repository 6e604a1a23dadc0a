import { statfsSync } from 'node:fs';
import { formatBytes, isImageError, isRegistryError } from '@corral/image';
import { CorralError, type ErrorKind, type Repair } from '@corral/sys';

export { CorralError, type ErrorKind, type Repair };

/**
 * An engine failure of a kind (NotFound, Conflict, ...). The engine says what went wrong; the
 * front-ends say how: the CLI maps kinds to Docker's exit codes (1, or 125 for run and create,
 * 126/127 for the program), the daemon to Docker's HTTP statuses (`httpStatus`).
 */
export class EngineError extends CorralError {
  /** The registry that refused the credentials (or wants some): the one to log in to. */
  readonly registry?: string;

  constructor(kind: ErrorKind, message: string, options: { registry?: string; repair?: Repair } = {}) {
    super(kind, message, { repair: options.repair });
    this.name = 'EngineError';
    if (options.registry) this.registry = options.registry;
  }
}

/**
 * How a front-end that is not a shell says an error's repair (the daemon's API clients): what
 * to do, not a CLI command. The CLI names its own (`corral system check --repair`).
 */
export function repairAdvice(e: CorralError): string | undefined {
  if (e.repair === 'system-check')
    return 'the data root holds damaged state: its check with repair (run on the host) sets it aside';
  return undefined;
}

/** Docker's HTTP status for an error kind (what the daemon answers). */
export function httpStatus(kind: ErrorKind): number {
  switch (kind) {
    case 'NotFound':
      return 404;
    case 'Conflict':
      return 409;
    case 'InvalidArgument':
      return 400;
    case 'NotModified':
      return 304;
    case 'Forbidden':
      return 403;
    default:
      return 500;
  }
}

const IMAGE_KINDS: Record<string, ErrorKind> = {
  NOT_FOUND: 'NotFound',
  MANIFEST_UNKNOWN: 'NotFound',
  BLOB_UNKNOWN: 'NotFound',
  NAME_UNKNOWN: 'NotFound',
  IN_USE: 'Conflict',
  CONFLICT: 'Conflict',
  UNAUTHORIZED: 'Forbidden',
  DENIED: 'Forbidden',
  NETWORK: 'Unavailable',
  HTTP: 'Unavailable',
  NO_SPACE: 'Unavailable',
  DAMAGED_STATE: 'Unavailable',
};

/**
 * The engine's view of what a library threw: image and registry errors become EngineErrors of
 * their kind (the message kept); anything else passes unchanged.
 */
export function asEngineError(e: unknown): unknown {
  if (e instanceof CorralError) return e;
  if (isRegistryError(e, 'UNAUTHORIZED', 'DENIED'))
    return new EngineError(IMAGE_KINDS[e.code]!, e.message, { registry: e.host });
  if (isImageError(e) || isRegistryError(e))
    return new EngineError(IMAGE_KINDS[e.code] ?? 'InvalidArgument', e.message, {
      repair: isImageError(e) ? e.repair : undefined,
    });
  return e;
}

/** Runs `fn`, rethrowing library errors as EngineErrors (see asEngineError). */
export async function engineOp<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw asEngineError(e);
  }
}

/** engineOp for synchronous calls (store lookups that read state files). */
export function engineSync<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw asEngineError(e);
  }
}

/** Is `e` (or an error it wraps, or its message) the kernel's "no space left on device"? */
function isNoSpace(e: unknown): boolean {
  for (let c = e, i = 0; c && i < 8; c = (c as { cause?: unknown }).cause, i++) {
    const code = (c as NodeJS.ErrnoException).code;
    if (code === 'ENOSPC' || code === 'EDQUOT') return true;
    if (/\bENOSPC\b|no space left on device/i.test((c as Error).message ?? '')) return true;
  }
  return false;
}

/**
 * Runs `fn`; the kernel's ENOSPC on the way (a record, a log, a network file, a mount's work
 * folder) becomes an Unavailable error that says the disk is full, which, and how full.
 */
export async function onFullDisk<T>(root: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (!isNoSpace(e) || /^the disk is full/.test((e as Error).message)) throw e;
    let space = '';
    try {
      const st = statfsSync(root);
      space = ` (${formatBytes(st.bavail * st.bsize)} free of ${formatBytes(st.blocks * st.bsize)})`;
    } catch {}
    throw new EngineError(
      'Unavailable',
      `the disk is full: the filesystem of the data root ${root} has no space left${space}: ${(e as Error).message}. Free some space (remove unused containers and images) and retry`,
    );
  }
}
