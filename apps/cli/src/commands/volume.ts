import { type MountCreateOptions, parseMountFlag, type VolumeView } from '@corral/engine';
import type { FlagSpec, ParsedArgs } from '../args.js';
import { table } from '../format.js';
import { HEADERS, isTemplate, renderRows } from '../templated.js';
import { bool, list } from './common.js';
import { type EngineSub, engineCommandGroup } from './group.js';

/** The mount flags of `run` / `create` as the engine's options (checked by the engine). */
export function mountOptions(a: ParsedArgs): MountCreateOptions {
  for (const v of list(a, 'volume')) {
    const mode = v.split(':')[2] ?? '';
    if (mode.split(',').some((m) => m === 'z' || m === 'Z'))
      console.error(
        `corral: note: -v ${v}: z/Z (SELinux relabeling) is ignored, corral sets no SELinux labels`,
      );
  }
  return {
    volumes: list(a, 'volume'),
    mounts: list(a, 'mount').map((m) => parseMountFlag(m)),
    tmpfs: list(a, 'tmpfs'),
    volumesFrom: list(a, 'volumes-from'),
  };
}

/** `K=V` strings as a map (Docker's --label and -o). */
const pairs = (values: string[]) =>
  Object.fromEntries(
    values.map((l) => [l.split('=')[0], l.includes('=') ? l.slice(l.indexOf('=') + 1) : '']),
  );

/** Docker's `--filter k=v` list as the engine's filters. */
const filters = (values: string[]) => {
  const out: Record<string, string[]> = {};
  for (const f of values) {
    const i = f.indexOf('=');
    const k = i < 0 ? f : f.slice(0, i);
    out[k] = [...(out[k] ?? []), i < 0 ? '' : f.slice(i + 1)];
  }
  return out;
};

const filterFlag: FlagSpec = {
  name: 'filter',
  short: 'f',
  type: 'list',
  value: 'K=V',
  description: 'Filter: name=, label=K[=V], dangling=true|false',
};

const subs: Record<string, EngineSub> = {
  create: {
    usage: 'volume create [OPTIONS] [VOLUME]',
    description: 'Create a volume (the local driver)',
    flags: [
      { name: 'driver', short: 'd', type: 'string', value: 'local', description: 'Only local' },
      { name: 'label', type: 'list', value: 'K=V', description: 'Set metadata' },
      {
        name: 'opt',
        short: 'o',
        type: 'list',
        value: 'K=V',
        description: "The local driver's options: type=tmpfs|none|bind, device=..., o=...",
      },
      { name: 'name', type: 'string', description: 'The volume name (or as argument)' },
    ],
    args: { min: 0, max: 1 },
    async run(e, a) {
      const v = await e.volumes.create({
        name: a.positionals[0] ?? (a.flags.name as string | undefined),
        driver: (a.flags.driver as string | undefined) ?? 'local',
        labels: pairs(list(a, 'label')),
        options: pairs(list(a, 'opt')),
      });
      console.log(v.Name);
      return 0;
    },
  },
  ls: {
    usage: 'volume ls [OPTIONS]',
    description: 'List volumes',
    flags: [
      { name: 'quiet', short: 'q', type: 'boolean', description: 'Only display volume names' },
      filterFlag,
      {
        name: 'format',
        type: 'string',
        value: 'string',
        description: "'json' (JSON lines), 'table TEMPLATE' or a Go template ({{.Name}} ...)",
      },
    ],
    args: { min: 0, max: 0 },
    async run(e, a) {
      const vols = await e.volumes.list(filters(list(a, 'filter')));
      const format = a.flags.format as string | undefined;
      if (bool(a, 'quiet')) for (const v of vols) console.log(v.Name);
      else if (isTemplate(format)) {
        const rows = vols.map((v) => ({
          Driver: v.Driver,
          Labels: Object.entries(v.Labels)
            .map(([k, x]) => `${k}=${x}`)
            .join(','),
          Mountpoint: v.Mountpoint,
          Name: v.Name,
          Scope: v.Scope,
        }));
        const out = renderRows(format, rows, HEADERS.volumes);
        if (out) console.log(out);
      } else if (a.flags.format === 'json') for (const v of vols) console.log(JSON.stringify(v));
      else
        console.log(
          table(
            ['DRIVER', 'VOLUME NAME'],
            vols.map((v) => [v.Driver, v.Name]),
          ),
        );
      return 0;
    },
  },
  inspect: {
    usage: 'volume inspect VOLUME [VOLUME...]',
    description: 'Show volumes as JSON',
    flags: [],
    args: { min: 1 },
    async run(e, a) {
      const out: VolumeView[] = [];
      for (const n of a.positionals) out.push(await e.volumes.inspect(n));
      console.log(JSON.stringify(out, null, 4));
      return 0;
    },
  },
  rm: {
    usage: 'volume rm [OPTIONS] VOLUME [VOLUME...]',
    description: 'Remove volumes no container uses',
    flags: [
      {
        name: 'force',
        short: 'f',
        type: 'boolean',
        description: 'No error for a volume that does not exist',
      },
    ],
    args: { min: 1 },
    async run(e, a) {
      let code = 0;
      for (const n of a.positionals) {
        try {
          await e.volumes.remove(n, { force: bool(a, 'force') });
          console.log(n);
        } catch (err) {
          console.error(`Error response from daemon: ${(err as Error).message}`);
          code = 1;
        }
      }
      return code;
    },
  },
  prune: {
    usage: 'volume prune [OPTIONS]',
    description: 'Remove unused anonymous volumes (every unused one with -a)',
    flags: [
      { name: 'all', short: 'a', type: 'boolean', description: 'Named volumes too' },
      { name: 'force', short: 'f', type: 'boolean', description: 'Do not prompt (corral never does)' },
      { name: 'filter', type: 'list', value: 'K=V', description: 'Filter: label=K[=V]' },
    ],
    args: { min: 0, max: 0 },
    async run(e, a) {
      const r = await e.volumes.prune({ all: bool(a, 'all'), filters: filters(list(a, 'filter')) });
      if (r.removed.length) console.log(`Deleted Volumes:\n${r.removed.join('\n')}\n`);
      console.log(`Total reclaimed space: ${r.spaceReclaimed}B`);
      return 0;
    },
  },
};

export const volume = engineCommandGroup('volume', 'Manage volumes', subs);

export const volumeCommands = [volume];
