import { mkdirSync } from 'node:fs';
import { diffUpper, formatChanges } from './diff.js';
import { UnionFsError } from './errors.js';
import { FuseUnionFs, isFuseUnion } from './fuse/backend.js';
import { serveUnion } from './fuse/union/serve.js';
import { getUnionFs } from './registry.js';
import { checkOptions, mountAt } from './validate.js';

const USAGE = `usage:
  corral-unionfs [--backend overlay|fuse] -o lowerdir=A:B,upperdir=U,workdir=W[,volatile] MOUNTPOINT
  corral-unionfs [--backend overlay|fuse] -o lowerdir=A:B MOUNTPOINT      (read-only)
  corral-unionfs umount MOUNTPOINT
  corral-unionfs diff -o lowerdir=A:B,upperdir=U                            (like docker diff)
lowerdir lists the top layer first, as overlayfs does; "\\" escapes "," and ":" in paths.
With the fuse backend, the command returns once the mount answers and its server runs on in
the background until the mount is taken off; -f keeps the server in the foreground, -d also
logs every request to stderr.`;

/** Splits on `sep` where it is not escaped with a backslash, and drops the escapes. */
function splitEscaped(s: string, sep: string): string[] {
  const out: string[] = [];
  let cur = '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '\\' && i + 1 < s.length) cur += s[++i];
    else if (c === sep) {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  out.push(cur);
  return out;
}

/** Splits on `sep` where it is not escaped, keeping the escapes for a later split. */
function splitKeep(s: string, sep: string): string[] {
  const out: string[] = [];
  let cur = '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '\\' && i + 1 < s.length) cur += c + s[++i];
    else if (c === sep) {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  out.push(cur);
  return out;
}

export interface ParsedOptions {
  lower: string[];
  upper?: string;
  work?: string;
  /** overlayfs's `volatile` (the fuse backend): syncs do not wait for the disk. */
  volatile?: boolean;
}

/** Parses fuse-overlayfs / overlayfs `-o` values (several may be given) into mount options. */
export function parseOverlayOptions(values: readonly string[]): ParsedOptions {
  const out: ParsedOptions = { lower: [] };
  for (const value of values) {
    for (const opt of splitKeep(value, ',')) {
      if (opt === '' || opt === 'rw') continue;
      const eq = opt.indexOf('=');
      const key = eq < 0 ? opt : opt.slice(0, eq);
      const val = eq < 0 ? '' : opt.slice(eq + 1);
      if (key === 'lowerdir') out.lower = splitEscaped(val, ':').filter(Boolean);
      else if (key === 'upperdir') out.upper = splitEscaped(val, ',')[0];
      else if (key === 'workdir') out.work = splitEscaped(val, ',')[0];
      else if (key === 'volatile' && eq < 0) out.volatile = true;
      else
        throw new UnionFsError(
          'BAD_OPTIONS',
          `unsupported option "${opt}": corral-unionfs takes lowerdir, upperdir, workdir and (with the fuse backend) volatile`,
        );
    }
  }
  if (out.lower.length === 0)
    throw new UnionFsError('BAD_OPTIONS', 'give the lower layers: -o lowerdir=TOP:...:BOTTOM');
  return out;
}

/** Runs the corral-unionfs command line; returns the exit code. */
export async function main(
  argv: readonly string[],
  out = process.stdout,
  err = process.stderr,
): Promise<number> {
  let backend = 'overlay';
  let foreground = false;
  let debug = false;
  const opts: string[] = [];
  const rest: string[] = [];
  try {
    for (let i = 0; i < argv.length; i++) {
      const a = argv[i];
      if (a === '-h' || a === '--help') {
        out.write(`${USAGE}\n`);
        return 0;
      }
      if (a === '--backend' || a === '-o') {
        const v = argv[++i];
        if (v === undefined) throw new UnionFsError('BAD_OPTIONS', `${a} needs a value`);
        if (a === '-o') opts.push(v);
        else backend = v;
      } else if (a.startsWith('--backend=')) backend = a.slice(10);
      else if (a.startsWith('-o') && a.length > 2) opts.push(a.slice(2));
      else if (a === '-f') foreground = true;
      else if (a === '-d') {
        foreground = true;
        debug = true;
      } else if (a.startsWith('-')) throw new UnionFsError('BAD_OPTIONS', `unknown flag ${a}`);
      else rest.push(a);
    }
    if (rest[0] === 'umount' || rest[0] === 'unmount') {
      if (rest.length !== 2) throw new UnionFsError('BAD_OPTIONS', 'umount takes one MOUNTPOINT');
      // The mount says which backend made it.
      const m = mountAt(rest[1]);
      await getUnionFs(m && isFuseUnion(m.fsType) ? 'fuse' : backend).unmount(rest[1]);
      return 0;
    }
    if (rest[0] === 'diff') {
      const o = parseOverlayOptions(opts);
      if (!o.upper) throw new UnionFsError('BAD_OPTIONS', 'diff needs -o upperdir=U (and lowerdir)');
      const text = formatChanges(diffUpper(o.upper, o.lower));
      if (text) out.write(`${text}\n`);
      return 0;
    }
    if (rest.length !== 1) throw new UnionFsError('BAD_OPTIONS', 'give exactly one MOUNTPOINT');
    const o = parseOverlayOptions(opts);
    if (o.volatile && backend !== 'fuse')
      throw new UnionFsError('BAD_OPTIONS', 'volatile is an option of the fuse backend: add --backend fuse');
    const fs = o.volatile ? new FuseUnionFs({ volatile: true }) : getUnionFs(backend);
    if (o.work) mkdirSync(o.work, { recursive: true });
    const options = { lower: o.lower, upper: o.upper, work: o.work, target: rest[0] };
    if (foreground && backend === 'fuse') {
      // This process is the server, until the mount is taken off.
      const c = checkOptions(options, 'fuse');
      await serveUnion({ ...c, debug, volatile: o.volatile }, () => {});
      return 0;
    }
    // A kernel mount has no process to keep in the foreground: -f and -d change nothing there.
    await fs.mount(options);
    return 0;
  } catch (e) {
    if (e instanceof UnionFsError) {
      err.write(`corral-unionfs: ${e.message}\n`);
      if (e.code === 'BAD_OPTIONS') err.write(`${USAGE}\n`);
      return e.code === 'BAD_OPTIONS' ? 2 : 1;
    }
    err.write(`corral-unionfs: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
}
