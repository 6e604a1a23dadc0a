// Detach keys (Docker's --detach-keys, ctrl-p,ctrl-q by default): typed at an attached
// terminal, the sequence ends the attachment and leaves the container running. Front-ends
// parse the user's spec here and pass what is typed through a DetachFilter.
import { EngineError } from './errors.js';

/** Docker's default: ctrl-p then ctrl-q. */
export const DEFAULT_DETACH_KEYS = 'ctrl-p,ctrl-q';

// ctrl-@ is 0, ctrl-a 1, ..., ctrl-z 26, then ctrl-[ ctrl-\ ctrl-] ctrl-^ ctrl-_ (27-31).
const CTRL = '@abcdefghijklmnopqrstuvwxyz[\\]^_';

/**
 * The bytes of a detach-keys spec, as Docker reads it: comma-separated keys, each one
 * character, `ctrl-X` (X one of a-z @ [ \ ] ^ _), or `DEL`. An empty spec means the default.
 */
export function parseDetachKeys(spec: string | undefined): Buffer {
  const keys = spec?.length ? spec : DEFAULT_DETACH_KEYS;
  const bytes: number[] = [];
  for (const key of keys.split(',')) {
    if (key.length === 1) bytes.push(key.charCodeAt(0));
    else if (key.startsWith('ctrl-') && key.length === 6 && CTRL.includes(key[5]!))
      bytes.push(CTRL.indexOf(key[5]!));
    else if (key === 'DEL') bytes.push(127);
    else
      throw new EngineError(
        'InvalidArgument',
        `Invalid detach keys (${keys}) provided: Unknown character: '${key}'`,
      );
  }
  return Buffer.from(bytes);
}

/**
 * Watches typed input for the detach sequence. `push` returns what is to be passed on (a
 * partial match is held back until it is known not to be the sequence, then passed on as
 * typed) and whether the sequence is complete: its bytes are not passed on, nor anything after.
 */
export class DetachFilter {
  private matched = 0;

  constructor(private readonly keys: Buffer) {}

  push(chunk: Buffer): { pass: Buffer; detach: boolean } {
    if (!this.keys.length) return { pass: chunk, detach: false };
    const out: number[] = [];
    for (const b of chunk) {
      if (b === this.keys[this.matched]) {
        this.matched++;
        if (this.matched === this.keys.length) return { pass: Buffer.from(out), detach: true };
        continue;
      }
      // Not the sequence after all: what was held goes on as typed, and this byte may start it anew.
      for (let i = 0; i < this.matched; i++) out.push(this.keys[i]!);
      this.matched = 0;
      if (b === this.keys[0]) this.matched = 1;
      else out.push(b);
      if (this.matched === this.keys.length) return { pass: Buffer.from(out), detach: true };
    }
    return { pass: Buffer.from(out), detach: false };
  }
}
