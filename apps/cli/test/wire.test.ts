import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Cleanups } from '@corral/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { send, type WireResponse } from '../src/remote/wire.js';

// remote/wire.ts against a server on a unix socket of the test's that answers byte by byte,
// so that every split a connection can make of headers, chunks and their CRLFs is taken.
const c = new Cleanups();
afterAll(() => c.run());

async function serve(answer: (request: string, socket: Socket) => void): Promise<string> {
  const path = join(c.tempDir('cli-wire'), 's.sock');
  const server: Server = createServer((socket) => {
    // The client closes once it has what it reads (a body's length): writes after that fail.
    socket.on('error', () => {});
    let got = '';
    socket.on('data', (d) => {
      got += d.toString('latin1');
      // A request's head, and its body when Content-Length says so or the last chunk came.
      const end = got.indexOf('\r\n\r\n');
      if (end < 0) return;
      const length = Number(/content-length: (\d+)/i.exec(got)?.[1] ?? 0);
      const chunked = /transfer-encoding: chunked/i.test(got);
      if (chunked ? !got.endsWith('0\r\n\r\n') : got.length < end + 4 + length) return;
      answer(got, socket);
    });
  });
  await new Promise<void>((r) => server.listen(path, r));
  c.add(() => new Promise<void>((r) => server.close(() => r())));
  return path;
}

/** Writes `text` one byte at a time, a turn of the event loop apart. */
async function trickle(socket: Socket, text: string, end = true): Promise<void> {
  for (const b of Buffer.from(text, 'latin1')) {
    if (socket.destroyed) return;
    socket.write(Buffer.from([b]));
    await new Promise((r) => setImmediate(r));
  }
  if (end) socket.end();
}

const text = async (res: WireResponse) => {
  let s = '';
  for await (const d of res) s += d;
  return s;
};

describe('remote wire', () => {
  it('reads a chunked answer split at every byte, with its headers', async () => {
    const sock = await serve((_, s) => {
      void trickle(
        s,
        'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Two: a\r\nX-Two: b\r\nTransfer-Encoding: chunked\r\n\r\n' +
          '5\r\nhello\r\n1;ext=1\r\n \r\nb\r\nworld, 12ab\r\n0\r\n\r\n',
      );
    });
    const a = await send(sock, { method: 'GET', path: '/x', headers: {} });
    if (a.kind !== 'response') throw new Error('no response');
    expect(a.res.statusCode).toBe(200);
    expect(a.res.headers['content-type']).toBe('application/json');
    expect(a.res.headers['x-two']).toBe('a, b');
    expect(await text(a.res)).toBe('hello world, 12ab');
  });

  it('stops a Content-Length body at its length, and sends a stream body chunked', async () => {
    let body = '';
    const sock = await serve((req, s) => {
      body = req.slice(req.indexOf('\r\n\r\n') + 4);
      void trickle(s, 'HTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\nabcdEXTRA', false);
    });
    const a = await send(sock, {
      method: 'POST',
      path: '/load',
      headers: { 'Transfer-Encoding': 'chunked' },
      body: Readable.from([Buffer.from('tar'), Buffer.from('ball!')]),
    });
    if (a.kind !== 'response') throw new Error('no response');
    expect([a.res.statusCode, await text(a.res)]).toEqual([201, 'abcd']);
    expect(body).toBe('3\r\ntar\r\n5\r\nball!\r\n0\r\n\r\n');
  });

  it('hands over an upgraded connection with the bytes that came with its headers', async () => {
    const sock = await serve((_, s) => {
      s.write('HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\n\r\nfirst ');
      setTimeout(() => s.end('then more'), 50);
    });
    const a = await send(sock, {
      method: 'POST',
      path: '/attach',
      headers: { Upgrade: 'tcp' },
      upgrade: true,
    });
    if (a.kind !== 'upgrade') throw new Error('no upgrade');
    expect(a.headers['content-type']).toContain('raw-stream');
    let got = '';
    a.socket.on('data', (d: Buffer) => {
      got += d;
    });
    await new Promise((r) => a.socket.once('end', r));
    expect(got).toBe('first then more');
  });

  it('rejects when nothing listens, and when the server closes before answering', async () => {
    await expect(
      send('/nonexistent/corral.sock', { method: 'GET', path: '/', headers: {} }),
    ).rejects.toMatchObject({
      code: 'ENOENT',
    });
    const sock = await serve((_, s) => s.end());
    await expect(send(sock, { method: 'GET', path: '/', headers: {} })).rejects.toThrow(
      /closed the connection/,
    );
  });
});
