/** What went wrong, as a stable code callers can switch on. */
export type ImageErrorCode =
  | 'DIGEST_MISMATCH'
  | 'SIZE_MISMATCH'
  | 'INVALID_DIGEST'
  | 'INVALID_REFERENCE'
  | 'NOT_FOUND'
  | 'IN_USE'
  | 'CONFLICT'
  | 'BAD_ARCHIVE'
  | 'BAD_MANIFEST'
  | 'BAD_LAYER'
  | 'UNSAFE_PATH'
  | 'NO_SPACE'
  /** A state file of the store (refs.json, a record) does not parse (`repair` is set). */
  | 'DAMAGED_STATE'
  | 'UNSUPPORTED';

/** A typed error of @corral/image; the message says what is wrong and which file or blob. */
export class ImageError extends Error {
  readonly code: ImageErrorCode;
  /**
   * The store itself is damaged (a state file, a blob): the data root's check with repair
   * (@corral/sys's Repair). Data, not words: each front-end names its own command.
   */
  readonly repair?: 'system-check';

  constructor(code: ImageErrorCode, message: string, options?: { cause?: unknown; repair?: 'system-check' }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ImageError';
    this.code = code;
    const repair = options?.repair ?? (code === 'DAMAGED_STATE' ? 'system-check' : undefined);
    if (repair) this.repair = repair;
  }
}

export function isImageError(e: unknown, code?: ImageErrorCode): e is ImageError {
  return e instanceof ImageError && (code === undefined || e.code === code);
}
