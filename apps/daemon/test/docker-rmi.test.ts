import { Cleanups } from '@corral/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Daemon, startDaemon } from './daemon.js';

// Docker's rules for images in use (issue 17), as the docker CLI sees them through corrald:
// a forced rmi of an image a running container uses is a 409 Conflict with Docker's message.
const c = new Cleanups();
let d: Daemon;

beforeAll(async () => {
  d = await startDaemon(c);
});
afterAll(() => c.run());

describe('docker rmi of an image in use, against corrald', () => {
  it('refuses rmi -f while a container runs from it (409, cannot be forced); untags once it is stopped', async () => {
    const id = (await d.docker(['run', '-d', '--name', 'user', 'busybox', 'sleep', '300'])).out;
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    const refused = await d.docker(['rmi', '-f', 'busybox']);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(
      new RegExp(
        `Error response from daemon: conflict: unable to delete [0-9a-f]{12} \\(cannot be forced\\) - image is being used by running container ${id.slice(0, 12)}`,
      ),
    );
    const api = await d.api('DELETE', '/images/busybox?force=1');
    expect(api.status).toBe(409);
    expect((await d.docker(['exec', 'user', 'echo', 'still'])).out).toBe('still');

    await d.docker(['stop', '-t', '0', 'user']);
    const stopped = await d.docker(['rmi', 'busybox']);
    expect(stopped.status).toBe(1);
    expect(stopped.stderr).toContain('(must force)');
    const forced = await d.docker(['rmi', '-f', 'busybox']);
    expect(forced.status, forced.stderr).toBe(0);
    expect(forced.out).toContain('Untagged: busybox:latest');
    expect((await d.docker(['start', 'user'])).status).toBe(0);
    expect((await d.docker(['exec', 'user', 'echo', 'restarted'])).out).toBe('restarted');
    await d.docker(['rm', '-f', 'user']);
    const pruned = await d.api('POST', '/images/prune?filters=%7B%22until%22%3A%5B%2224h%22%5D%7D');
    expect(pruned.status).toBe(200);
  }, 240_000);
});
