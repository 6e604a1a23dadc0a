// docker cp through corrald: the engine's host half of a copy (copyFromContainer and
// copyToContainer, the docker client's rules) over corrald's archive endpoints (HEAD, GET, PUT
// /containers/{id}/archive), as the docker CLI does it.
import { type Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  type ContainerFiles,
  copyFromContainer,
  copyToContainer,
  EngineError,
  type ExtractResult,
  type PathStat,
} from '@corral/engine';
import type { Backend } from '../backend.js';
import type { Client } from './http.js';

/** The size field of a tar header: octal text, or base-256 for large sizes (GNU). */
function tarSize(field: Buffer): number {
  if (field[0] & 0x80) {
    let n = 0;
    for (let i = 1; i < field.length; i++) n = n * 256 + field[i];
    return n;
  }
  return Number.parseInt(field.toString('latin1').replace(/\0.*$/s, '').trim() || '0', 8);
}

/**
 * A tar passed through unchanged while its entries and their file bytes are counted: what a
 * local extraction reports (`Successfully copied`), since corrald's PUT answers nothing.
 */
export function countingTar(input: Readable): { stream: Readable; result: ExtractResult } {
  const result: ExtractResult = { entries: 0, bytes: 0 };
  let header = Buffer.alloc(0);
  let skip = 0;
  const stream = new Transform({
    transform(chunk: Buffer, _enc, done) {
      let off = 0;
      while (off < chunk.length) {
        if (skip > 0) {
          const n = Math.min(skip, chunk.length - off);
          skip -= n;
          off += n;
          continue;
        }
        const n = Math.min(512 - header.length, chunk.length - off);
        header = Buffer.concat([header, chunk.subarray(off, off + n)]);
        off += n;
        if (header.length < 512) break;
        const size = tarSize(header.subarray(124, 136));
        const type = String.fromCharCode(header[156]);
        // Extended headers (pax x/g, GNU long names L/K) carry data that names no entry.
        if (header.some((b) => b !== 0) && !'xgLK'.includes(type)) {
          result.entries++;
          if (type === '0' || type === '\0' || type === '7') result.bytes += size;
        }
        skip = Math.ceil(size / 512) * 512;
        header = Buffer.alloc(0);
      }
      done(null, chunk);
    },
  });
  input.on('error', (e) => stream.destroy(e));
  return { stream: input.pipe(stream), result };
}

/** One container's archive endpoints at corrald. */
function remoteFiles(c: Client, ref: string): ContainerFiles {
  const path = `/containers/${encodeURIComponent(ref)}/archive`;
  return {
    name: async () =>
      String(
        (await c.json<{ Name: string }>('GET', `/containers/${encodeURIComponent(ref)}/json`)).Name,
      ).replace(/^\//, ''),
    async stat(p) {
      let res: Awaited<ReturnType<Client['request']>>;
      try {
        res = await c.request('HEAD', path, { query: { path: p } });
      } catch (e) {
        // A HEAD answer has no body: the same GET fails with the message.
        if (!(e instanceof EngineError)) throw e;
        const again = await c.request('GET', path, { query: { path: p } }).catch((x: unknown) => x);
        if (again instanceof Error) throw again;
        (again as Readable).destroy();
        throw e;
      }
      res.resume();
      const header = res.headers['x-docker-container-path-stat'];
      if (typeof header !== 'string') throw new EngineError('Unavailable', `corrald gave no stat of ${p}`);
      return JSON.parse(Buffer.from(header, 'base64').toString('utf8')) as PathStat;
    },
    async get(p, out) {
      await pipeline(await c.request('GET', path, { query: { path: p } }), out);
    },
    async put(p, input, o) {
      const counted = countingTar(input);
      await c.json('PUT', path, {
        query: {
          path: p,
          noOverwriteDirNonDir: o.noOverwriteDirNonDir === true,
          copyUIDGID: o.keepOwners === true,
        },
        body: counted.stream,
      });
      return counted.result;
    },
  };
}

export function remoteArchive(c: Client): Backend['archive'] {
  return {
    get: (ref, p, out) => remoteFiles(c, ref).get(p, out),
    copyFrom: (ref, src, dst, o) => copyFromContainer(remoteFiles(c, ref), src, dst, o),
    copyTo: (ref, src, dst, o) => copyToContainer(remoteFiles(c, ref), src, dst, o),
  };
}
