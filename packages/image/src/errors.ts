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
  /** A state file of the store (refs.json, a record) does not parse: `corral system check --repair`. */
  | 'DAMAGED_STATE'
  | 'UNSUPPORTED';

/** A typed error of @corral/image; the message says what is wrong and what to do. */
export class ImageError extends Error {
  readonly code: ImageErrorCode;

  constructor(code: ImageErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ImageError';
    this.code = code;
  }
}

export function isImageError(e: unknown, code?: ImageErrorCode): e is ImageError {
  return e instanceof ImageError && (code === undefined || e.code === code);
}
