import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { Cleanups } from '@corral/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import { ContentStore, sha256 } from '../src/index.js';
import { getInto } from '../src/registry/blob-download.js';
import { selfSignedCert } from './registry-server.js';

const cleanup = new Cleanups();
afterEach(() => cleanup.run());

function newStore(): ContentStore {
  const tmp = cleanup.tempDir('image');
  return new ContentStore(tmp);
}

const tmpFiles = (store: ContentStore) => fs.readdirSync(store.tmpDir);

/** A server on 127.0.0.1 whose sockets are all closed at the end of the test. */
async function listen(server: net.Server): Promise<{ url: string; connections: () => number }> {
  let connections = 0;
  const sockets = new Set<net.Socket>();
  server.on(server instanceof https.Server ? 'secureConnection' : 'connection', (s: net.Socket) => {
    connections++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanup.add(
    () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  );
  const { port } = server.address() as net.AddressInfo;
  const scheme = server instanceof https.Server ? 'https' : 'http';
  return { url: `${scheme}://127.0.0.1:${port}`, connections: () => connections };
}

describe('BlobWriter', () => {
  it('takes bytes read into its own memory, and copied ones, as one verified blob', async () => {
    const store = newStore();
    const data = randomBytes(3 * 1024 * 1024 + 12345);
    const seen: number[] = [];
    const w = store.createWriter({ digest: sha256(data), size: data.length, onBytes: (n) => seen.push(n) });
    let off = 0;
    // Alternate the two ways in: reads into reserve()d room and copies through put().
    for (let i = 0; off < data.length; i++) {
      if (i % 2 === 0) {
        const room = w.reserve();
        const n = Math.min(room.length, 70_000, data.length - off);
        data.copy(room, 0, off, off + n);
        if (!w.commit(n)) await w.drained();
        off += n;
      } else {
        const n = Math.min(50_000, data.length - off);
        await w.write(data.subarray(off, off + n));
        off += n;
      }
    }
    expect(w.reserve().length).toBeGreaterThanOrEqual(64 * 1024);
    const info = await w.finish();
    expect(info).toEqual({ digest: sha256(data), size: data.length });
    expect(fs.readFileSync(store.blobPath(info.digest)).equals(data)).toBe(true);
    expect(seen.at(-1)).toBe(data.length);
    expect(tmpFiles(store)).toEqual([]);
  });

  it('refuses a blob larger than expected at the first byte too many, and one with another digest', async () => {
    const store = newStore();
    const data = randomBytes(100_000);
    const big = store.createWriter({ size: 99_999 });
    expect(() => big.put(data)).toThrow(/larger than the expected 99999 bytes/);
    await big.abort();
    const wrong = store.createWriter({ digest: sha256(Buffer.from('other')) });
    await wrong.write(data);
    await expect(wrong.finish()).rejects.toThrow(
      new RegExp(`expected ${sha256(Buffer.from('other'))}, got ${sha256(data)}`),
    );
    const short = store.createWriter({ size: 100_001 });
    await short.write(data);
    await expect(short.finish()).rejects.toThrow(/has 100000 bytes, expected 100001/);
    expect(store.listBlobs()).toEqual([]);
    expect(tmpFiles(store)).toEqual([]);
  });

  it('asks its source to pause while slabs wait for the disk, and drains', async () => {
    const store = newStore();
    const w = store.createWriter();
    const slab = randomBytes(1024 * 1024);
    // Whole slabs written back to back, never waiting: the writer must say "pause" at some point.
    let paused = false;
    for (let i = 0; i < 64 && !paused; i++) paused = !w.put(slab);
    expect(paused).toBe(true);
    await w.drained();
    const info = await w.finish();
    expect(info.size % slab.length).toBe(0);
    expect(fs.statSync(store.blobPath(info.digest)).size).toBe(info.size);
  });

  it('leaves nothing when aborted, however far it got', async () => {
    const store = newStore();
    const w = store.createWriter();
    w.put(randomBytes(5 * 1024 * 1024));
    await w.abort();
    await w.abort();
    expect(tmpFiles(store)).toEqual([]);
    expect(store.listBlobs()).toEqual([]);
  });
});

describe('blob downloads straight from the socket', () => {
  it('stores a Content-Length body and reuses the kept-alive connection for the next blob', async () => {
    const blobs = [randomBytes(2 * 1024 * 1024 + 7), randomBytes(10), Buffer.alloc(0)];
    const server = http.createServer((req, res) => {
      const i = Number(req.url!.split('/').pop());
      expect(req.headers['user-agent']).toBe('corral-test');
      res.writeHead(200, { 'Content-Length': blobs[i]!.length }).end(blobs[i]);
    });
    const { url, connections } = await listen(server);
    const store = newStore();
    for (let i = 0; i < blobs.length; i++) {
      const w = store.createWriter({ digest: sha256(blobs[i]!), size: blobs[i]!.length });
      expect(await getInto(new URL(`/blob/${i}`, url), w, { headers: { 'User-Agent': 'corral-test' } })).toBe(
        'stored',
      );
      expect(await w.finish()).toEqual({ digest: sha256(blobs[i]!), size: blobs[i]!.length });
    }
    expect(connections()).toBe(1);
  });

  it('asks again on a new connection when the server drops a kept-alive one as it is reused', async () => {
    const blob = randomBytes(1000);
    // Each connection answers one request and is dropped, unanswered, at the next: the race
    // of a server closing an idle connection just as the client sends on it.
    const server = net.createServer((s) => {
      let requests = 0;
      s.on('data', () => {
        if (++requests > 1) s.destroy();
        else
          s.write(
            Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${blob.length}\r\n\r\n`), blob]),
          );
      });
    });
    const { url, connections } = await listen(server);
    const store = newStore();
    for (let i = 0; i < 3; i++) {
      const w = store.createWriter({ digest: sha256(blob) });
      expect(await getInto(new URL('/b', url), w, { headers: {} })).toBe('stored');
      await w.finish();
    }
    expect(connections()).toBe(3);
  });

  it('declines chunked bodies, errors and 401s before storing a byte', async () => {
    const server = http.createServer((req, res) => {
      if (req.url === '/chunked') {
        res.writeHead(200, { 'Transfer-Encoding': 'chunked' });
        res.write('abc');
        res.end('def');
      } else if (req.url === '/401') {
        res.writeHead(401, { 'WWW-Authenticate': 'Bearer realm="x"', 'Content-Length': 2 }).end('no');
      } else res.writeHead(404, { 'Content-Length': 0 }).end();
    });
    const { url } = await listen(server);
    const store = newStore();
    for (const path of ['/chunked', '/401', '/missing']) {
      const w = store.createWriter();
      expect(await getInto(new URL(path, url), w, { headers: {} })).toBe('declined');
      expect(w.bytes).toBe(0);
      await w.abort();
    }
    // A header value that would add a line (a hostile token) is never sent.
    const w = store.createWriter();
    expect(
      await getInto(new URL('/x', url), w, { headers: { Authorization: 'Bearer a\r\nX-Evil: 1' } }),
    ).toBe('declined');
    await w.abort();
    expect(tmpFiles(store)).toEqual([]);
  });

  it('follows a redirect to another host and drops Authorization there, as docker does', async () => {
    const blob = randomBytes(70_000);
    const storage = http.createServer((req, res) => {
      res.writeHead(200, {
        'Content-Length': blob.length,
        'X-Saw-Auth': String(req.headers.authorization ?? 'none'),
      });
      res.end(req.headers.authorization ? Buffer.from('leaked') : blob);
    });
    const store2 = await listen(storage);
    // "localhost" is another origin than 127.0.0.1 (the redirect leaves the registry).
    const storageUrl = store2.url.replace('127.0.0.1', 'localhost');
    const registry = http.createServer((req, res) => {
      expect(req.headers.authorization).toBe('Bearer t');
      res.writeHead(307, { Location: `${storageUrl}/data?sig=1`, 'Content-Length': 0 }).end();
    });
    const { url } = await listen(registry);
    const store = newStore();
    const w = store.createWriter({ digest: sha256(blob) });
    expect(await getInto(new URL('/v2/x/blobs/d', url), w, { headers: { Authorization: 'Bearer t' } })).toBe(
      'stored',
    );
    expect((await w.finish()).digest).toBe(sha256(blob));
  });

  it('fails with NETWORK when the connection drops half way, or more bytes come than announced', async () => {
    const server = net.createServer((s) => {
      s.once('data', (req) => {
        const path = req.toString().split(' ')[1];
        if (path === '/short') s.end('HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n' + 'x'.repeat(5000));
        else if (path === '/long') s.end('HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcdef');
        else s.end('HTTP/1.1 banana\r\n\r\n');
      });
    });
    const { url } = await listen(server);
    const store = newStore();
    const cases: [string, RegExp][] = [
      ['/short', /closed before the whole blob arrived/],
      ['/long', /more bytes than its Content-Length/],
      ['/bad', /malformed HTTP answer/],
    ];
    for (const [path, message] of cases) {
      const w = store.createWriter();
      const err = await getInto(new URL(path, url), w, { headers: {} }).catch((e) => e);
      expect(err).toMatchObject({ name: 'RegistryError' });
      expect(err.message).toMatch(message);
      await w.abort();
    }
    expect(tmpFiles(store)).toEqual([]);
  });

  it('gives up on a silent server after the timeout, and at once when aborted', async () => {
    const server = net.createServer(() => {});
    const { url } = await listen(server);
    const store = newStore();
    const w1 = store.createWriter();
    await expect(getInto(new URL('/x', url), w1, { headers: {}, timeoutMs: 300 })).rejects.toMatchObject({
      code: 'NETWORK',
      message: expect.stringMatching(/ETIMEDOUT/),
    });
    await w1.abort();
    const ac = new AbortController();
    const w2 = store.createWriter();
    const pending = getInto(new URL('/x', url), w2, { headers: {}, signal: ac.signal });
    setTimeout(() => ac.abort(), 50);
    await expect(pending).rejects.toMatchObject({
      code: 'NETWORK',
      message: expect.stringMatching(/aborted/),
    });
    await w2.abort();
  });

  it('speaks TLS: verifies the certificate unless the registry is named insecure', async () => {
    const tmp = cleanup.tempDir('image');
    const { keyPath, certPath } = selfSignedCert(tmp, 'localhost');
    const blob = randomBytes(300_000);
    const server = https.createServer(
      { key: fs.readFileSync(keyPath), cert: fs.readFileSync(certPath) },
      (_req, res) => res.writeHead(200, { 'Content-Length': blob.length }).end(blob),
    );
    const { url } = await listen(server);
    const store = newStore();
    const refused = store.createWriter();
    await expect(getInto(new URL('/b', url), refused, { headers: {} })).rejects.toMatchObject({
      code: 'NETWORK',
      message: expect.stringMatching(/certificate/),
    });
    await refused.abort();
    const w = store.createWriter({ digest: sha256(blob) });
    expect(await getInto(new URL('/b', url), w, { headers: {}, insecureTls: true })).toBe('stored');
    expect((await w.finish()).size).toBe(blob.length);
  });
});
