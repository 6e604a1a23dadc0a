/**
 * What went wrong, in the kinds the engine's front-ends map to exit codes and HTTP statuses
 * (the same names as @corral/sys's ErrorKind).
 */
export type NetworkErrorKind = 'NotFound' | 'Conflict' | 'InvalidArgument' | 'Unavailable';

/** The one base of the errors this package throws on purpose. */
export class NetworkError extends Error {
  readonly kind: NetworkErrorKind;
  /** Damaged state on disk: the data root's check with repair (@corral/sys's Repair). */
  readonly repair?: 'system-check';
  constructor(kind: NetworkErrorKind, message: string, options: { repair?: 'system-check' } = {}) {
    super(message);
    this.name = 'NetworkError';
    this.kind = kind;
    if (options.repair) this.repair = options.repair;
  }
}

/** A CNI plugin (or a program it needs) is not installed: the message names the package. */
export class MissingPluginError extends NetworkError {
  readonly plugin: string;
  constructor(plugin: string, searched: readonly string[], debianPackage: string) {
    super(
      'Unavailable',
      `${plugin} not found (looked in ${searched.join(':')}): install Debian's ${debianPackage} (apt-get install ${debianPackage})`,
    );
    this.name = 'MissingPluginError';
    this.plugin = plugin;
  }
}

/** A plugin's error result, as the CNI spec defines it: code, msg, details. */
export class CniPluginError extends NetworkError {
  readonly plugin: string;
  readonly command: string;
  readonly code: number;
  readonly details: string;
  constructor(plugin: string, command: string, code: number, msg: string, details = '') {
    super('Unavailable', `CNI ${plugin} ${command}: ${msg}${details ? ` (${details})` : ''} [code ${code}]`);
    this.name = 'CniPluginError';
    this.plugin = plugin;
    this.command = command;
    this.code = code;
    this.details = details;
  }
}
