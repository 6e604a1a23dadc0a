import { CorralError, EngineError } from '@corral/engine';

/**
 * An engine error as the CLI prints it: the library's words (what is wrong, which file), then
 * the remedy it carries as data, worded as this CLI's own command.
 */
export function errorText(e: unknown): string {
  const message = (e as Error)?.message ?? String(e);
  if (!(e instanceof CorralError)) return message;
  // A registry's refusal says which registry to log in to; the command to do it is ours.
  const registry = e instanceof EngineError ? e.registry : undefined;
  if (registry) return `${message} (\`corral login ${registry}\`)`;
  if (e.repair === 'system-check')
    return `${message}: run \`corral system check --repair\` to set it aside and repair the data root`;
  return message;
}
