// `--format` as docker's CLI reads it: `json` (corral's JSON lines, handled by each command),
// a Go template per row, or `table TEMPLATE` with Docker's column headers, aligned as
// docker's tabwriter does (columns at least 10 wide, 3 spaces of padding).
import { EngineError, formatPorts, shortId } from '@corral/engine';
import { ago, quoteCommand } from './format.js';
import { Template, TemplateError } from './template.js';

/** True when `format` is a template (or `table ...`) rather than absent or `json`. */
export const isTemplate = (format: string | undefined): format is string =>
  format !== undefined && format !== 'json' && (format.includes('{{') || format.trim().startsWith('table'));

/** Docker's header names of the fields of each listing's rows. */
export const HEADERS = {
  ps: {
    ID: 'CONTAINER ID',
    Image: 'IMAGE',
    Command: 'COMMAND',
    CreatedAt: 'CREATED AT',
    RunningFor: 'CREATED',
    Ports: 'PORTS',
    State: 'STATE',
    Status: 'STATUS',
    Size: 'SIZE',
    Names: 'NAMES',
    Labels: 'LABELS',
    Label: 'LABEL',
    Mounts: 'MOUNTS',
    Networks: 'NETWORKS',
  },
  images: {
    ID: 'IMAGE ID',
    Repository: 'REPOSITORY',
    Tag: 'TAG',
    Digest: 'DIGEST',
    CreatedSince: 'CREATED',
    CreatedAt: 'CREATED AT',
    Size: 'SIZE',
    Containers: 'CONTAINERS',
  },
  stats: {
    Container: 'CONTAINER',
    ID: 'CONTAINER ID',
    Name: 'NAME',
    CPUPerc: 'CPU %',
    MemUsage: 'MEM USAGE / LIMIT',
    MemPerc: 'MEM %',
    NetIO: 'NET I/O',
    BlockIO: 'BLOCK I/O',
    PIDs: 'PIDS',
  },
  networks: {
    ID: 'NETWORK ID',
    Name: 'NAME',
    Driver: 'DRIVER',
    Scope: 'SCOPE',
    IPv6: 'IPV6',
    Internal: 'INTERNAL',
    Labels: 'LABELS',
    CreatedAt: 'CREATED AT',
  },
  volumes: {
    Name: 'VOLUME NAME',
    Driver: 'DRIVER',
    Scope: 'SCOPE',
    Mountpoint: 'MOUNTPOINT',
    Labels: 'LABELS',
  },
} satisfies Record<string, Record<string, string>>;

function parse(format: string): { template: Template; table: boolean } {
  let f = format.trim();
  const table = f.startsWith('table');
  if (table) f = f.slice(5).trim();
  // The shell gives `\t` and `\n` as two characters; docker reads them as tab and newline.
  f = f.replace(/\\t/g, '\t').replace(/\\n/g, '\n');
  try {
    return { template: Template.parse(f), table };
  } catch (e) {
    if (e instanceof TemplateError)
      throw new EngineError('InvalidArgument', `template parsing error: ${e.message}`);
    throw e;
  }
}

/** `rows` through `format`, one rendering per row; with `table`, a header line first. */
export function renderRows(
  format: string,
  rows: readonly object[],
  headers: Record<string, string> = {},
): string {
  const { template, table } = parse(format);
  const lines = rows.map((r) => execute(template, r));
  if (!table) return lines.join('\n');
  return tabwrite([execute(template, headerContext(headers)), ...lines]);
}

/** One value through `format` (docker inspect -f), no header. */
export function renderOne(format: string, value: unknown): string {
  return execute(parse(format).template, value);
}

function execute(t: Template, data: unknown): string {
  try {
    return t.execute(data);
  } catch (e) {
    if (e instanceof TemplateError) throw new EngineError('InvalidArgument', e.message);
    throw e;
  }
}

/** What the header line is rendered from: every field reads as its column's name. */
function headerContext(headers: Record<string, string>): object {
  return new Proxy(
    {},
    {
      has: () => true,
      get: (_t, name) => {
        if (typeof name !== 'string') return undefined;
        const h = headers[name] ?? name.replace(/([a-z])([A-Z])/g, '$1 $2').toUpperCase();
        return name === 'Label' ? () => h : h;
      },
      ownKeys: () => Object.keys(headers),
      getOwnPropertyDescriptor: () => ({ enumerable: true, configurable: true }),
    },
  );
}

/** Go's tabwriter as docker sets it: minwidth 10, padding 3, cells end at tabs. */
export function tabwrite(lines: string[]): string {
  const cells = lines.flatMap((l) => l.split('\n')).map((l) => l.split('\t'));
  const widths: number[] = [];
  for (const row of cells)
    row.slice(0, -1).forEach((c, i) => {
      widths[i] = Math.max(widths[i] ?? 0, 10 - 3, [...c].length);
    });
  return cells
    .map((row) =>
      row
        .map((c, i) => (i < row.length - 1 ? c + ' '.repeat(widths[i] + 3 - [...c].length) : c))
        .join('')
        .trimEnd(),
    )
    .join('\n');
}

/** Docker's CreatedAt: `2026-11-30 23:15:38 +0000 UTC`. */
export const dockerTime = (iso: string) =>
  `${new Date(iso).toISOString().slice(0, 19).replace('T', ' ')} +0000 UTC`;

/** `k=v,k2=v2`, sorted, as docker's .Labels column. */
const labelList = (labels: Record<string, string> = {}) =>
  Object.keys(labels)
    .sort()
    .map((k) => `${k}=${labels[k]}`)
    .join(',');

/** A label accessor that `{{json .}}` leaves out, as docker's `.Label "k"` method. */
function withLabel<T extends object>(row: T, labels: Record<string, string> = {}): T {
  Object.defineProperty(row, 'Label', { value: (k: string) => labels[k] ?? '', enumerable: false });
  return row;
}

export interface PsSource {
  id: string;
  name: string;
  image: string;
  command: string;
  created: string;
  status: string;
  state: string;
  ports: Parameters<typeof formatPorts>[0];
  labels?: Record<string, string>;
  size?: string;
  mounts?: { Name?: string; Source: string; Driver?: string }[];
}

/** docker ps's Mounts: each mount's volume name, else its source, cut to 15 characters. */
const mountList = (mounts: PsSource['mounts'] = [], noTrunc = false) =>
  mounts
    .map((m) => m.Name || m.Source)
    .map((n) => (noTrunc || n.length <= 15 ? n : `${n.slice(0, 14)}…`))
    .join(',');

/** docker ps's row context (ContainerContext): the same field names and strings. */
export function psRow(c: PsSource, noTrunc = false) {
  return withLabel(
    {
      Command: noTrunc ? JSON.stringify(c.command) : quoteCommand(c.command),
      CreatedAt: dockerTime(c.created),
      ID: noTrunc ? c.id : shortId(c.id),
      Image: c.image,
      Labels: labelList(c.labels),
      LocalVolumes: String((c.mounts ?? []).filter((m) => m.Driver === 'local').length),
      Mounts: mountList(c.mounts, noTrunc),
      Names: c.name,
      Networks: '',
      Ports: formatPorts(c.ports),
      RunningFor: ago(c.created),
      Size: c.size ?? '',
      State: c.state,
      Status: c.status,
    },
    c.labels,
  );
}
