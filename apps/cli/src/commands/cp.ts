import { type Command, UsageError } from '../args.js';
import { bool, engine } from './common.js';

/**
 * docker's splitCpArg: `CONTAINER:PATH`, or a local path (one that starts with `/` or `.`
 * is always local, so `./a:b` is a file name with a colon).
 */
export function splitCpArg(arg: string): { container?: string; path: string } {
  if (arg.startsWith('/') || arg.startsWith('.')) return { path: arg };
  const i = arg.indexOf(':');
  if (i < 0) return { path: arg };
  return { container: arg.slice(0, i), path: arg.slice(i + 1) };
}

/** Docker's human sizes in cp's summary: 3 significant digits, powers of 1000 (`2.05kB`). */
export function humanSize(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return `${Number(n.toPrecision(3))}${units[i]}`;
}

export const cp: Command = {
  name: 'cp',
  usage:
    'cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n        corral cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH',
  description:
    'Copy files/folders between a container and the local filesystem\n\n' +
    "Use '-' as the source to read a tar archive from stdin and extract it to a directory\n" +
    "destination in a container. Use '-' as the destination to stream a tar archive of a\n" +
    'container source to stdout.',
  flags: [
    {
      name: 'archive',
      short: 'a',
      type: 'boolean',
      description: 'Archive mode (copy all uid/gid information)',
    },
    {
      name: 'follow-link',
      short: 'L',
      type: 'boolean',
      description: 'Always follow symbol link in SRC_PATH',
    },
    { name: 'quiet', short: 'q', type: 'boolean', description: 'Suppress progress output during copy' },
  ],
  args: { min: 2, max: 2 },
  async run(a, ctx) {
    const src = splitCpArg(a.positionals[0]);
    const dst = splitCpArg(a.positionals[1]);
    if (src.path === '') throw new UsageError('source can not be empty');
    if (dst.path === '') throw new UsageError('destination can not be empty');
    if (src.container !== undefined && dst.container !== undefined)
      throw new UsageError('copying between containers is not supported');
    if (src.container === undefined && dst.container === undefined)
      throw new UsageError('must specify at least one container source');
    const e = await engine(ctx);
    const options = { followLink: bool(a, 'follow-link'), archive: bool(a, 'archive') };
    const report = (bytes: number, where: string) => {
      if (!bool(a, 'quiet')) process.stderr.write(`Successfully copied ${humanSize(bytes)} to ${where}\n`);
    };
    if (src.container !== undefined) {
      if (dst.path === '-') {
        await e.archive.get(src.container, src.path, process.stdout);
        return 0;
      }
      const r = await e.archive.copyFrom(src.container, src.path, dst.path, options);
      report(r.bytes, dst.path);
      return 0;
    }
    const ref = dst.container!;
    if (src.path === '-') {
      await e.archive.copyTo(ref, '-', dst.path, { ...options, stdin: process.stdin });
      return 0;
    }
    const r = await e.archive.copyTo(ref, src.path, dst.path, options);
    report(r.bytes, `${ref}:${dst.path}`);
    return 0;
  },
};
