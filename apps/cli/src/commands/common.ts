import { Engine, openListing, type RegistrySettings } from '@corral/engine';
import { type Context, type ParsedArgs, UsageError } from '../args.js';
import type { Backend } from '../backend.js';

/**
 * The engine on the data root the command line chose (what interrupted runs left reclaimed), or
 * with `--host` corrald's, through its API (the remote client is loaded only then).
 */
export async function engine(ctx: Context, registry?: RegistrySettings, open?: OpenMode): Promise<Backend> {
  if (ctx.host) return remoteEngine(ctx.host, ctx, registry);
  return Engine.open({
    root: ctx.root,
    registry: extraCaFile ? { ...registry, extraCaFile } : registry,
    network: ctx.network,
    reclaim: open?.reclaim,
  });
}

/** What the listings (`ps`, `images`) ask of an engine. */
export type ListingBackend = Pick<Backend, 'list' | 'size'> & { images: Pick<Backend['images'], 'list'> };

/**
 * The engine for a listing: corrald's with `--host`; else the engine's listing, which reads the
 * data root without loading the whole Engine (and opens it, with its reclaim, when the root
 * holds something to reclaim): see openListing.
 */
export async function listing(ctx: Context, open?: OpenMode): Promise<ListingBackend> {
  if (ctx.host) return remoteEngine(ctx.host, ctx);
  return openListing({ root: ctx.root, network: ctx.network, reclaim: open?.reclaim });
}

/**
 * How a command opens the local engine: `reclaim` 'if-needed' for one that only reads
 * (`ps`), 'never' for one that reads nothing reclaim changes (`images`); see Engine.open.
 */
export interface OpenMode {
  reclaim?: 'always' | 'if-needed' | 'never';
}

/** corrald's engine through its API (the remote client is loaded only then). */
export async function remoteEngine(
  host: string,
  ctx: Context,
  registry?: RegistrySettings,
): Promise<Backend> {
  const { RemoteEngine } = await import('../remote/engine.js');
  return new RemoteEngine(host, ctx.command ?? 'this command', registry);
}

/**
 * NODE_EXTRA_CA_CERTS, when bin/corral.cjs started this process without it (its shell line): the
 * registry client then adds the file's certificates itself.
 */
const extraCaFile = (globalThis as { [k: symbol]: string | undefined })[Symbol.for('corral.cli.extraCaFile')];

export const str = (a: ParsedArgs, k: string) => a.flags[k] as string | undefined;
export const list = (a: ParsedArgs, k: string) => (a.flags[k] as string[] | undefined) ?? [];
export const bool = (a: ParsedArgs, k: string) => a.flags[k] === true;

/** An integer flag, or a usage error naming the flag. */
export function int(a: ParsedArgs, k: string): number | undefined {
  const v = str(a, k);
  if (v === undefined) return undefined;
  if (!/^-?\d+$/.test(v)) throw new UsageError(`invalid value "${v}" for --${k}: an integer is needed`);
  return Number(v);
}
