/** A runtime failure with the exit code a CLI should use (125, or 126/127 for the program). */
export class RuntimeError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = 125) {
    super(message);
    this.name = 'RuntimeError';
    this.exitCode = exitCode;
  }
}
