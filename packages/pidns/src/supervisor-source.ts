import { readFileSync } from 'node:fs';

let source: string | undefined;

/**
 * The supervisor's module as source text, for `node --input-type=module -e`: how a container's
 * init runs it from a node binary that cannot resolve any file of the container's root.
 */
export function supervisorSource(): string {
  source ??= readFileSync(new URL('./supervise.js', import.meta.url), 'utf8');
  return source;
}
