import * as fs from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import * as tar from 'tar-stream';
import { type ImageStore, MediaType, sha256 } from '../src/index.js';

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

/** Stores an image of one layer holding the file `f` (gzipped unless `gzip` is false) under `names`. */
export async function storeOneLayerImage(
  store: ImageStore,
  o: { body: string; names: string[]; gzip?: boolean },
) {
  const gzip = o.gzip ?? true;
  const tarBytes = await makeTar([{ name: 'f', body: o.body }]);
  const layer = await store.content.writeBlob(gzip ? gzipSync(tarBytes) : tarBytes);
  const cfg = await store.content.writeBlob(
    Buffer.from(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        rootfs: { type: 'layers', diff_ids: [sha256(tarBytes)] },
      }),
    ),
  );
  const manifest = {
    schemaVersion: 2,
    mediaType: MediaType.OciManifest,
    config: { mediaType: MediaType.OciConfig, ...cfg },
    layers: [{ mediaType: gzip ? MediaType.OciLayerGzip : MediaType.OciLayer, ...layer }],
  };
  return store.importFromBlobs({ manifest: Buffer.from(JSON.stringify(manifest)), names: o.names });
}
