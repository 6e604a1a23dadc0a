import { existsSync, mkdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Cleanups, until } from '@corral/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Daemon, startDaemon } from './daemon.js';

// `docker cp` both ways with the real docker CLI against corrald: the archive endpoints
// (HEAD for the stat, GET for a tar out, PUT for a tar in), on running and stopped containers.
const c = new Cleanups();
let d: Daemon;
let host: string;

beforeAll(async () => {
  d = await startDaemon(c);
  host = c.tempDir('docker-cp-host');
});
afterAll(() => c.run());

const must = (args: string[], bin?: string) => d.must(args, { bin });

const SETUP =
  'mkdir -p /data/sub && echo hello > /data/a.txt && echo deep > /data/sub/b && ln -sfn /data/a.txt /data/link && chown 123:45 /data/a.txt';

describe('docker cp against corrald', () => {
  it('copies out of a running container: a folder, a file renamed, a folder content with /.', async () => {
    await must(['run', '-d', '--name', 'box', 'busybox', 'sh', '-c', `${SETUP} && sleep 300`]);
    await until(
      async () => (await d.docker(['exec', 'box', 'test', '-L', '/data/link'])).status === 0,
      'the setup in the container',
    );
    const out = join(host, 'out');
    mkdirSync(out);
    await must(['cp', 'box:/data', out]);
    expect(readFileSync(join(out, 'data', 'a.txt'), 'utf8')).toBe('hello\n');
    expect(readFileSync(join(out, 'data', 'sub', 'b'), 'utf8')).toBe('deep\n');
    expect(readlinkSync(join(out, 'data', 'link'))).toBe('/data/a.txt');
    await must(['cp', 'box:/data/a.txt', join(out, 'renamed.txt')]);
    expect(readFileSync(join(out, 'renamed.txt'), 'utf8')).toBe('hello\n');
    await must(['cp', 'box:/data/.', join(out, 'content')]);
    expect(readFileSync(join(out, 'content', 'sub', 'b'), 'utf8')).toBe('deep\n');
    // -L: the link's target, under the link's name.
    await must(['cp', '-L', 'box:/data/link', join(out, 'followed')]);
    expect(readFileSync(join(out, 'followed'), 'utf8')).toBe('hello\n');
  });

  it('copies into a running container: a folder, a file over a file, into a folder with a trailing /', async () => {
    const src = join(host, 'src');
    mkdirSync(join(src, 'nested'), { recursive: true });
    writeFileSync(join(src, 'nested', 'f'), 'from host\n');
    writeFileSync(join(host, 'one.txt'), 'one\n');
    await must(['cp', src, 'box:/copied']);
    expect((await must(['exec', 'box', 'cat', '/copied/nested/f'])).stdout).toBe('from host\n');
    await must(['cp', join(host, 'one.txt'), 'box:/data/a.txt']);
    expect((await must(['exec', 'box', 'cat', '/data/a.txt'])).stdout).toBe('one\n');
    await must(['cp', join(host, 'one.txt'), 'box:/data/sub/']);
    expect((await must(['exec', 'box', 'cat', '/data/sub/one.txt'])).stdout).toBe('one\n');
  });

  it("gives Docker's errors: a missing source, a folder onto a file, a file into a missing folder", async () => {
    const missing = await d.docker(['cp', 'box:/nope', host]);
    expect(missing.status).not.toBe(0);
    expect(missing.stderr).toContain('Could not find the file /nope in container box');
    const dirOnFile = await d.docker(['cp', join(host, 'src'), 'box:/data/a.txt']);
    expect(dirOnFile.status).not.toBe(0);
    expect(dirOnFile.stderr).toContain('cannot copy directory');
    const noDir = await d.docker(['cp', join(host, 'one.txt'), 'box:/absent/']);
    expect(noDir.status).not.toBe(0);
  });

  it('answers bad archive requests with 400/404 bodies, the HEAD stat with Go mode bits', async () => {
    const head = await d.api('HEAD', '/containers/box/archive?path=/data/sub');
    expect(head.status).toBe(200);
    const stat = JSON.parse(
      Buffer.from(String(head.headers['x-docker-container-path-stat']), 'base64').toString(),
    );
    expect(stat).toMatchObject({ name: 'sub', mode: 2 ** 31 + 0o755, linkTarget: '' });
    const link = await d.api('HEAD', '/containers/box/archive?path=/data/link');
    const linkStat = JSON.parse(
      Buffer.from(String(link.headers['x-docker-container-path-stat']), 'base64').toString(),
    );
    expect(linkStat).toMatchObject({ name: 'link', linkTarget: '/data/a.txt' });
    expect((await d.api('GET', '/containers/box/archive')).status).toBe(400);
    expect((await d.api('HEAD', '/containers/box/archive?path=/nope')).status).toBe(404);
    const garbage = await d.api('PUT', '/containers/box/archive?path=/tmp', Buffer.alloc(1024, 7));
    expect(garbage.status).toBe(400);
    expect(garbage.json().message).toContain('not valid');
    const onFile = await d.api('PUT', '/containers/box/archive?path=/data/a.txt', Buffer.alloc(1024));
    expect([onFile.status, onFile.json().message]).toEqual([400, 'extraction point is not a directory']);
  });

  it('copies in and out of a stopped container (its root mounted for the copy)', async () => {
    await must(['stop', '-t', '0', 'box']);
    writeFileSync(join(host, 'late.txt'), 'while stopped\n');
    await must(['cp', join(host, 'late.txt'), 'box:/data/']);
    await must(['cp', 'box:/data/late.txt', join(host, 'back.txt')]);
    expect(readFileSync(join(host, 'back.txt'), 'utf8')).toBe('while stopped\n');
    await must(['start', 'box']);
    expect((await must(['exec', 'box', 'cat', '/data/late.txt'])).stdout).toBe('while stopped\n');
    // Nothing of the copy's mount is left in the container's folder.
    expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toMatch(/\/cp-[0-9a-f]{8} /);
  });

  it.skipIf(!existsSync('/usr/bin/docker'))("works with Debian's docker 20.10 client too", async () => {
    const out = join(host, 'old');
    mkdirSync(out);
    await must(['cp', 'box:/data/sub', out], '/usr/bin/docker');
    expect(readFileSync(join(out, 'sub', 'b'), 'utf8')).toBe('deep\n');
    await must(['cp', join(host, 'one.txt'), 'box:/old.txt'], '/usr/bin/docker');
    expect((await must(['exec', 'box', 'cat', '/old.txt'])).stdout).toBe('one\n');
    await must(['rm', '-f', 'box']);
  });
});

describe('docker ps filters and sizes, system df, container prune against corrald', () => {
  it('filters and sizes containers, reports disk usage and prunes', async () => {
    await d.docker(['rm', '-f', 'box']); // the cp tests' container, if still there
    await must(['run', '-d', '--name', 'up', '--label', 'role=web', 'busybox', 'sleep', '300']);
    await d.docker(['run', '--name', 'down', 'busybox', 'sh', '-c', 'head -c 4000 /dev/zero > /f; exit 2']);
    expect((await must(['ps', '-a', '--filter', 'exited=2', '--format', '{{.Names}}'])).out).toBe('down');
    expect((await must(['ps', '--filter', 'label=role=web', '--format', '{{.Names}}'])).out).toBe('up');
    expect((await must(['ps', '-a', '--filter', 'status=exited', '--format', '{{.Names}}'])).out).toBe(
      'down',
    );
    // As dockerd: a filter alone lists running containers only; a status filter needs no -a.
    expect((await must(['ps', '--filter', 'name=down', '--format', '{{.Names}}'])).out).toBe('');
    expect((await must(['ps', '--filter', 'status=exited', '--format', '{{.Names}}'])).out).toBe('down');
    expect((await must(['ps', '-l', '--format', '{{.Names}}'])).out).toBe('down');
    const sized = await must(['ps', '-a', '-s', '--filter', 'name=down', '--format', '{{.Size}}']);
    expect(sized.out).toMatch(/^4(\.\d+)?kB \(virtual [\d.]+MB\)$/);
    const df = await must(['system', 'df', '--format', '{{.Type}} {{.TotalCount}} {{.Active}}']);
    expect(df.out.split('\n').slice(0, 2)).toEqual(['Images 1 1', 'Containers 2 1']);
    const pruned = await must(['container', 'prune', '-f']);
    expect(pruned.out).toMatch(/^Deleted Containers:\n[0-9a-f]{64}\n\nTotal reclaimed space: 4/);
    expect((await must(['ps', '-a', '--format', '{{.Names}}'])).out).toBe('up');
    await must(['rm', '-f', 'up']);
  });
});
