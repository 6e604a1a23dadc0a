// `corral images` in a module of its own: its bundle (dist/bundle/images) then holds neither
// the other image commands nor the Engine they open (issue 15).
import { formatBytes } from '@corral/engine';
import type { Command } from '../args.js';
import { ago, table } from '../format.js';
import { println } from '../print.js';
import { dockerTime, HEADERS, isTemplate, renderRows } from '../templated.js';
import { listing, str } from './common.js';

/** An image id as docker shows it: 12 hex digits. */
export const short = (digest: string) => digest.replace(/^sha256:/, '').slice(0, 12);

export const images: Command = {
  name: 'images',
  usage: 'images [OPTIONS]',
  description: 'List images',
  flags: [
    { name: 'quiet', short: 'q', type: 'boolean', description: 'Only show image IDs' },
    {
      name: 'format',
      type: 'string',
      value: 'string',
      description: "'json' (JSON lines), 'table TEMPLATE' or a Go template ({{.Repository}}:{{.Tag}} ...)",
    },
  ],
  async run(a, ctx) {
    // Nothing a reclaim of interrupted runs does changes the image list (issue 15).
    const rows = await (await listing(ctx, { reclaim: 'never' })).images.list();
    const format = str(a, 'format');
    if (a.flags.quiet) {
      for (const r of rows) println(short(r.id));
    } else if (isTemplate(format)) {
      const out = renderRows(
        format,
        rows.flatMap((r) =>
          (r.repoTags.length ? r.repoTags : ['<none>:<none>']).map((t) => ({
            Containers: 'N/A',
            CreatedAt: r.created ? dockerTime(r.created) : '',
            CreatedSince: r.created ? ago(r.created) : 'N/A',
            Digest: '<none>',
            ID: short(r.id),
            Repository: t.slice(0, t.lastIndexOf(':')),
            Size: formatBytes(r.size),
            Tag: t.slice(t.lastIndexOf(':') + 1),
          })),
        ),
        HEADERS.images,
      );
      if (out) println(out);
    } else if (str(a, 'format') === 'json') {
      for (const r of rows) println(JSON.stringify(r));
    } else {
      const out: string[][] = [];
      for (const r of rows) {
        const tags = r.repoTags.length ? r.repoTags : ['<none>:<none>'];
        for (const t of tags) {
          const i = t.lastIndexOf(':');
          out.push([
            t.slice(0, i),
            t.slice(i + 1),
            short(r.id),
            r.created ? ago(r.created) : 'N/A',
            formatBytes(r.size),
          ]);
        }
      }
      println(table(['REPOSITORY', 'TAG', 'IMAGE ID', 'CREATED', 'SIZE'], out));
    }
    return 0;
  },
};
