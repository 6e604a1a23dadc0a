/** What went wrong talking to a registry, so callers can branch without parsing messages. */
export type RegistryErrorCode =
  | 'INVALID_REFERENCE'
  | 'INVALID_PLATFORM'
  | 'UNAUTHORIZED'
  | 'DENIED'
  | 'MANIFEST_UNKNOWN'
  | 'BLOB_UNKNOWN'
  | 'NAME_UNKNOWN'
  | 'DIGEST_MISMATCH'
  | 'SIZE_MISMATCH'
  | 'PLATFORM_UNAVAILABLE'
  | 'UNSUPPORTED_MANIFEST'
  | 'INVALID_MANIFEST'
  | 'INVALID_CONFIG'
  | 'NETWORK'
  | 'HTTP';

/**
 * A failure of the registry client. The message says what failed and what to do;
 * `code` classifies it, `host` and `status` are set when known.
 */
export class RegistryError extends Error {
  readonly code: RegistryErrorCode;
  readonly host?: string;
  readonly status?: number;

  constructor(
    code: RegistryErrorCode,
    message: string,
    opts: { host?: string; status?: number; cause?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'RegistryError';
    this.code = code;
    this.host = opts.host;
    this.status = opts.status;
  }
}

/** Content whose digest is not the one it was asked for (or announced) under. */
export class DigestMismatchError extends RegistryError {
  readonly expected: string;
  readonly actual: string;

  constructor(what: string, expected: string, actual: string, host?: string) {
    super(
      'DIGEST_MISMATCH',
      `${what}: digest mismatch: expected ${expected}, got ${actual}; nothing was stored`,
      {
        host,
      },
    );
    this.name = 'DigestMismatchError';
    this.expected = expected;
    this.actual = actual;
  }
}

/** True when `e` is a RegistryError with one of the given codes. */
export function isRegistryError(e: unknown, ...codes: RegistryErrorCode[]): e is RegistryError {
  return e instanceof RegistryError && (codes.length === 0 || codes.includes(e.code));
}
