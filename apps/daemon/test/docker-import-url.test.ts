import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Cleanups, freePort } from '@corral/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Daemon, startDaemonWithMaker } from './daemon.js';

// docker import URL through corrald (fromSrc=URL): the daemon fetches the tarball from a
// server this test runs on loopback and streams it into the import; refused fetches give
// dockerd's errors and a body cut short stores nothing.
const c = new Cleanups();
let d: Daemon;
let tarball: Buffer;
let server: Server;
let base = '';
const served: string[] = [];

beforeAll(async () => {
  d = await startDaemonWithMaker(c, 'fetched');
  const tar = join(c.tempDir('corrald-import-url'), 'rootfs.tar');
  expect((await d.docker(['export', '-o', tar, 'maker'])).status).toBe(0);
  tarball = readFileSync(tar);
  server = createServer((req, res) => {
    served.push(req.url ?? '');
    if (req.url === '/rootfs.tar') {
      res.writeHead(200, { 'Content-Length': tarball.length, 'Content-Type': 'application/x-tar' });
      return res.end(tarball);
    }
    if (req.url === '/moved') {
      res.writeHead(302, { Location: '/rootfs.tar' });
      return res.end();
    }
    if (req.url === '/cut.tar') {
      // Says the whole length, sends half, then drops the connection.
      res.writeHead(200, { 'Content-Length': tarball.length });
      res.write(tarball.subarray(0, tarball.length >> 1), () => setTimeout(() => res.socket?.destroy(), 50));
      return;
    }
    res.writeHead(404, { 'Content-Type': 'text/plain' });
    res.end('no such tarball\n');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  c.add(() => new Promise<void>((r) => server.close(() => r())));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => c.run());

const must = async (args: string[]) => {
  const r = await d.docker(args);
  if (r.status !== 0) throw new Error(`docker ${args.join(' ')}: ${r.stderr}`);
  return r;
};
const imageIds = async () => (await must(['images', '-q', '--no-trunc'])).out.split('\n').sort();
/** Every file under the image store: a failed import must leave it as it was (no blob, no temp file). */
const storeFiles = () =>
  readdirSync(join(d.root, 'image'), { recursive: true, withFileTypes: true })
    .filter((e) => !e.isDirectory())
    .map((e) => join(e.parentPath, e.name))
    .sort();

describe('docker import URL through corrald', () => {
  it('fetches the tarball (docker CLI), applies -c and -m, and the image runs', async () => {
    const r = await must([
      'import',
      '-c',
      'CMD ["cat", "/made"]',
      '-m',
      'from a URL',
      `${base}/rootfs.tar`,
      'fromurl:1',
    ]);
    // dockerd's lines: where from, then the image's id.
    expect(r.out.split('\n')).toEqual([
      `Downloading from ${base}/rootfs.tar`,
      expect.stringMatching(/^sha256:[0-9a-f]{64}$/),
    ]);
    expect(served).toContain('/rootfs.tar');
    const history = await must(['history', '--no-trunc', '--format', '{{.Comment}}', 'fromurl:1']);
    expect(history.out).toBe('from a URL');
    expect((await must(['run', '--rm', '--network', 'none', 'fromurl:1'])).out).toBe('fetched');
  });

  it.skipIf(!existsSync('/usr/bin/docker'))("Debian's docker 20.10 imports from a URL too", async () => {
    const r = await d.docker(['import', `${base}/rootfs.tar`, 'fromurl:debian'], { bin: '/usr/bin/docker' });
    expect(r.status, r.stderr).toBe(0);
    expect((await must(['run', '--rm', '--network', 'none', 'fromurl:debian', 'cat', '/made'])).out).toBe(
      'fetched',
    );
  });

  it("follows a redirect, takes a bare host/path as http (dockerd's rule) and streams its progress", async () => {
    const host = base.replace('http://', '');
    const r = await d.api(
      'POST',
      `/v1.47/images/create?fromSrc=${encodeURIComponent(`${host}/moved`)}&repo=bare&tag=1`,
    );
    expect(r.status).toBe(200);
    const lines = r.text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines[0].status).toBe(`Downloading from ${base}/rootfs.tar`);
    expect(lines.at(-1).status).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(lines.some((l) => l.error)).toBe(false);
    expect((await must(['run', '--rm', '--network', 'none', 'bare:1', 'cat', '/made'])).out).toBe('fetched');
  });

  it("answers a 404 with dockerd's status and words, storing nothing", async () => {
    const before = [await imageIds(), storeFiles()];
    const r = await d.docker(['import', `${base}/none.tar`, 'nope:1']);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(
      `Error response from daemon: failed to GET ${base}/none.tar with status 404 Not Found: no such tarball`,
    );
    const api = await d.api(
      'POST',
      `/v1.47/images/create?fromSrc=${encodeURIComponent(`${base}/none.tar`)}&repo=nope`,
    );
    expect(api.status).toBe(404);
    expect([await imageIds(), storeFiles()]).toEqual(before);
  });

  it('refuses a port that nobody serves (500) and a scheme other than http(s) (400)', async () => {
    const closed = `http://127.0.0.1:${await freePort()}/x.tar`;
    const r = await d.api('POST', `/v1.47/images/create?fromSrc=${encodeURIComponent(closed)}&repo=nope`);
    expect(r.status).toBe(500);
    expect(r.json().message).toContain(`Get "${closed}"`);
    expect(r.json().message).toContain('ECONNREFUSED');
    const ftp = await d.api(
      'POST',
      `/v1.47/images/create?fromSrc=${encodeURIComponent('ftp://127.0.0.1/x.tar')}&repo=nope`,
    );
    expect(ftp.status).toBe(400);
    expect(ftp.json().message).toContain('unsupported protocol scheme "ftp"');
  });

  it('fails on a body cut short and leaves the store as it was (no image, no blob, no temp file)', async () => {
    const before = [await imageIds(), storeFiles()];
    const r = await d.docker(['import', `${base}/cut.tar`, 'cut:1']);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`importing from ${base}/cut.tar`);
    expect([await imageIds(), storeFiles()]).toEqual(before);
  });
});
