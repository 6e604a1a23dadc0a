import * as fs from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import * as tar from 'tar-stream';

export interface TarEntry {
  name: string;
  type?: tar.Header['type'] | 'pax-header';
  body?: string | Buffer;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: Date;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  pax?: Record<string, string>;
}

/** Builds a tar in memory with tar-stream. */
export async function makeTar(entries: TarEntry[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const c of pack as AsyncIterable<Buffer>) chunks.push(c);
  })();
  for (const e of entries) {
    const body = e.body === undefined ? undefined : Buffer.from(e.body);
    await new Promise<void>((resolve, reject) => {
      const header = {
        name: e.name,
        type: (e.type ?? 'file') as tar.Header['type'],
        mode: e.mode ?? (e.type === 'directory' ? 0o755 : 0o644),
        uid: e.uid ?? 0,
        gid: e.gid ?? 0,
        mtime: e.mtime ?? new Date(1_600_000_000_000),
        linkname: e.linkname,
        devmajor: e.devmajor,
        devminor: e.devminor,
        pax: e.pax,
        size: body?.length ?? 0,
      };
      pack.entry(header, body ?? Buffer.alloc(0), (err) => (err ? reject(err) : resolve()));
    });
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

export interface ReadEntry {
  header: tar.Header;
  body: Buffer;
}

/** Reads every entry of a tar stream or buffer. */
export async function readTar(source: Buffer | Readable): Promise<ReadEntry[]> {
  const ex = tar.extract();
  const out: ReadEntry[] = [];
  const feed = (async () => {
    if (Buffer.isBuffer(source)) ex.end(source);
    else {
      for await (const c of source as AsyncIterable<Buffer>)
        if (!ex.write(c)) await new Promise((r) => ex.once('drain', r));
      ex.end();
    }
  })();
  for await (const entry of ex) {
    const chunks: Buffer[] = [];
    for await (const c of entry as AsyncIterable<Buffer>) chunks.push(c);
    out.push({ header: entry.header, body: Buffer.concat(chunks) });
  }
  await feed;
  return out;
}

export async function collect(stream: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.from(c));
  return Buffer.concat(chunks);
}

/** Every path under `dir` (relative), for "nothing appeared outside" checks. */
export function listTree(dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const n of fs.readdirSync(join(dir, rel))) {
      const r = rel ? `${rel}/${n}` : n;
      out.push(r);
      const st = fs.lstatSync(join(dir, r));
      if (st.isDirectory()) walk(r);
    }
  };
  walk('');
  return out.sort();
}
