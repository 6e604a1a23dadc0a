import { CorralError, type ErrorKind, type Repair } from '@corral/sys';

/**
 * A runtime failure with the exit code a runtime CLI uses (runc's: 125, 126/127 for the
 * program, 1 for a container in the wrong state); its kind says the same to a library user.
 */
export class RuntimeError extends CorralError {
  readonly exitCode: number;
  constructor(message: string, exitCode = 125, options: { repair?: Repair } = {}) {
    super(kindOfExit(exitCode), message, options);
    this.name = 'RuntimeError';
    this.exitCode = exitCode;
  }
}

function kindOfExit(code: number): ErrorKind {
  if (code === 126) return 'NotExecutable';
  if (code === 127) return 'CommandNotFound';
  if (code === 1) return 'Conflict';
  return 'CannotStart';
}
