/** What went wrong, as a stable code callers can branch on. */
export type UnionFsErrorCode =
  | 'BAD_OPTIONS'
  | 'LOWER_MISSING'
  | 'UPPER_MISSING'
  | 'UPPER_UNSUPPORTED'
  | 'MOUNTPOINT_MISSING'
  | 'MOUNTPOINT_BUSY'
  | 'NOT_MOUNTED'
  | 'MOUNT_FAILED'
  | 'UNKNOWN_BACKEND'
  | 'BACKEND_UNAVAILABLE';

/** A union mount could not be made or removed; the message says what to do. */
export class UnionFsError extends Error {
  readonly code: UnionFsErrorCode;

  constructor(code: UnionFsErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'UnionFsError';
    this.code = code;
  }
}
