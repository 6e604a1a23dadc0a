import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';
import { CniPluginError, MissingPluginError } from '../errors.js';
import { run } from '../run.js';

/** Where Debian's containernetworking-plugins puts the plugins, then the upstream default. */
export const DEFAULT_CNI_PATH: readonly string[] = ['/usr/lib/cni', '/opt/cni/bin'];

export type CniCommand = 'ADD' | 'DEL' | 'CHECK' | 'VERSION';

/** What the runtime passes a plugin in its environment (CNI spec, "Parameters"). */
export interface CniInvocation {
  command: CniCommand;
  containerId: string;
  /** The namespace's path (CNI_NETNS); may be absent for DEL when it is already gone. */
  netns?: string;
  ifname: string;
  /** CNI_ARGS, `K=V;K=V`. */
  args?: Record<string, string>;
  cniPath: readonly string[];
}

/** The JSON a plugin returns on ADD (the parts corral reads; the rest is kept as is). */
export interface CniResult {
  cniVersion: string;
  interfaces?: { name: string; mac?: string; sandbox?: string }[];
  ips?: { address: string; gateway?: string; interface?: number }[];
  routes?: { dst: string; gw?: string }[];
  dns?: Record<string, unknown>;
  [k: string]: unknown;
}

/** Plugins found, per CNI path and type: a process (a keeper, corrald) looks each up once. */
const found = new Map<string, string>();

/** Finds a plugin binary on the CNI path, or says which Debian package provides it. */
export function findPlugin(type: string, cniPath: readonly string[]): string {
  if (!/^[A-Za-z0-9_.-]+$/.test(type)) throw new TypeError(`bad CNI plugin type ${type}`);
  const key = `${cniPath.join(':')}\0${type}`;
  const known = found.get(key);
  if (known) return known;
  for (const dir of cniPath) {
    const p = join(dir, type);
    try {
      accessSync(p, constants.X_OK);
      found.set(key, p);
      return p;
    } catch {}
  }
  throw new MissingPluginError(`CNI plugin ${type}`, cniPath, 'containernetworking-plugins');
}

/**
 * Runs one plugin as the CNI spec says: the parameters in CNI_* variables, the network
 * configuration as JSON on stdin, the result (or an error object) as JSON on stdout, the exit
 * status saying which. PATH is kept: the plugins run iptables from it.
 */
export async function invokePlugin(
  type: string,
  config: Record<string, unknown>,
  inv: CniInvocation,
): Promise<CniResult | undefined> {
  const bin = findPlugin(type, inv.cniPath);
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    CNI_COMMAND: inv.command,
    CNI_CONTAINERID: inv.containerId,
    CNI_NETNS: inv.netns ?? '',
    CNI_IFNAME: inv.ifname,
    CNI_PATH: inv.cniPath.join(':'),
  };
  if (inv.args && Object.keys(inv.args).length > 0) {
    env.CNI_ARGS = Object.entries(inv.args)
      .map(([k, v]) => `${k}=${v}`)
      .join(';');
  }
  const r = await run(bin, [], { input: JSON.stringify(config), env }).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== 'ENOENT' && e.code !== 'EACCES') throw e;
    found.clear(); // removed since it was found: look again, and name the package if it is gone
    throw new MissingPluginError(`CNI plugin ${type}`, inv.cniPath, 'containernetworking-plugins');
  });
  if (r.status !== 0) {
    let err: { code?: number; msg?: string; details?: string } = {};
    try {
      err = JSON.parse(r.stdout);
    } catch {}
    throw new CniPluginError(
      type,
      inv.command,
      err.code ?? r.status ?? -1,
      err.msg ?? (r.stderr.trim() || r.stdout.trim() || 'failed without a message'),
      err.details,
    );
  }
  if (inv.command === 'DEL' || r.stdout.trim() === '') return undefined;
  return JSON.parse(r.stdout) as CniResult;
}
