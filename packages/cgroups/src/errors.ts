/**
 * A cgroup operation that failed: which cgroup, what was attempted and what to do about it.
 * `code` is the errno name when the kernel refused (EBUSY, EINVAL, ...) or a corral code
 * (EXISTS, OUTSIDE, TIMEOUT, NOCONTROLLER, ...).
 */
export class CgroupError extends Error {
  readonly code: string;
  readonly path: string | undefined;

  constructor(code: string, message: string, path?: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CgroupError';
    this.code = code;
    this.path = path;
  }
}

/** A limit that is malformed or that the host cannot honour; `field` names the limit. */
export class CgroupLimitError extends Error {
  readonly field: string;

  constructor(field: string, message: string) {
    super(message);
    this.name = 'CgroupLimitError';
    this.field = field;
  }
}
