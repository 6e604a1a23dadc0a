import { type EngineOptions, openListing, type RegistrySettings } from '@corral/engine';
import { type Context, type ParsedArgs, UsageError } from '../args.js';
import type { Backend } from '../backend.js';

/**
 * How this process opens the engine on this machine's data root (Engine.open): set by the entry
 * that holds the engine (main.ts, through local-engine.ts). The bundle that serves only `--host`
 * (entries/host.ts) sets none, so it holds no engine code; the bin sends it nothing else.
 */
let openLocal: ((options: EngineOptions) => Promise<Backend>) | undefined;

/** Gives the commands the local engine (see openLocal). */
export function useLocalEngine(open: (options: EngineOptions) => Promise<Backend>): void {
  openLocal = open;
}

/**
 * The engine on the data root the command line chose (what interrupted runs left reclaimed), or
 * with `--host` corrald's, through its API (the remote client is loaded only then).
 */
export async function engine(ctx: Context, registry?: RegistrySettings, open?: OpenMode): Promise<Backend> {
  if (ctx.host) return remoteEngine(ctx.host, ctx, registry);
  if (!openLocal)
    throw new Error('this entry of the CLI serves only --host (bin/corral.cjs picks the whole CLI)');
  return openLocal({
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

/**
 * corrald's API client: given by an entry that holds it (entries/host.ts, which thus carries no
 * lazily loaded copy); else loaded on first use, so that a daemonless command never reads it.
 */
let Remote: typeof import('../remote/engine.js').RemoteEngine | undefined;

/** Gives the commands corrald's API client (see Remote). */
export function useRemoteEngine(client: typeof import('../remote/engine.js').RemoteEngine): void {
  Remote = client;
}

/** corrald's engine through its API (the remote client is loaded only then). */
export async function remoteEngine(
  host: string,
  ctx: Context,
  registry?: RegistrySettings,
): Promise<Backend> {
  const Client = Remote ?? (await import('../remote/engine.js')).RemoteEngine;
  return new Client(host, ctx.command ?? 'this command', registry);
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
