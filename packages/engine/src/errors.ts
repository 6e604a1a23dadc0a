/**
 * An engine failure with the exit code the CLI should use: 1 for an unknown container or a
 * refused operation, 125 for an error before the program ran, 126/127 when the program could
 * not be started (Docker's convention).
 */
export class EngineError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = 1) {
    super(message);
    this.name = 'EngineError';
    this.exitCode = exitCode;
  }
}
