import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { Cleanups, until } from '@corral/testkit';
import type Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCorrald } from './corrald.js';

// dockerode (the npm Docker client) against corrald on a private socket and data root.
const c = new Cleanups();
let docker: Docker;
let root: string;

beforeAll(async () => {
  const dir = c.tempDir('dockerode');
  ({ dockerode: docker, root } = await startCorrald(c, dir));
});
afterAll(() => c.run());

/** Collects a demuxed attach or logs stream into stdout and stderr text. */
function demux(stream: NodeJS.ReadableStream): Promise<{ out: string; err: string }> {
  const out = new PassThrough();
  const err = new PassThrough();
  let o = '';
  let e = '';
  out.on('data', (d) => {
    o += d;
  });
  err.on('data', (d) => {
    e += d;
  });
  docker.modem.demuxStream(stream, out, err);
  return new Promise((resolve) => stream.on('end', () => resolve({ out: o, err: e })));
}

describe('dockerode against corrald', () => {
  it('pings and reads the version', async () => {
    expect(String(await docker.ping())).toBe('OK');
    expect((await docker.version()).ApiVersion).toBe('1.47');
  });

  it('creates, attaches (demuxed), starts, waits, reads logs and removes', async () => {
    const ct = await docker.createContainer({
      Image: 'busybox',
      Cmd: ['sh', '-c', 'echo to-out; echo to-err >&2; exit 5'],
      AttachStdout: true,
      AttachStderr: true,
    });
    const stream = await ct.attach({ stream: true, stdout: true, stderr: true, hijack: true });
    const got = demux(stream);
    const waited = ct.wait({ condition: 'next-exit' });
    await ct.start();
    expect(await got).toEqual({ out: 'to-out\n', err: 'to-err\n' });
    expect((await waited).StatusCode).toBe(5);
    const logs = (await ct.logs({ stdout: true, stderr: true, follow: false })) as unknown as Buffer;
    // Not following: the body is the frames, whole.
    expect(logs.includes(Buffer.from('to-out\n'))).toBe(true);
    expect(logs.includes(Buffer.from('to-err\n'))).toBe(true);
    expect((await ct.inspect()).State).toMatchObject({ Status: 'exited', ExitCode: 5, Running: false });
    await ct.remove();
    await expect(ct.inspect()).rejects.toMatchObject({ statusCode: 404 });
    expect(readdirSync(join(root, 'containers'))).toEqual([]);
  });

  it('writes stdin through a hijacked attach and ends it with a half-close', async () => {
    const ct = await docker.createContainer({
      Image: 'busybox',
      Cmd: ['sh', '-c', 'tr a-z A-Z'],
      OpenStdin: true,
      StdinOnce: true,
      AttachStdin: true,
      AttachStdout: true,
      HostConfig: { AutoRemove: true, NetworkMode: 'none' },
    });
    const stream = (await ct.attach({
      stream: true,
      stdin: true,
      stdout: true,
      stderr: true,
      hijack: true,
    })) as NodeJS.ReadWriteStream & {
      end(): void;
    };
    const got = demux(stream);
    const waited = ct.wait({ condition: 'removed' });
    await ct.start();
    stream.write('hello dockerode\n');
    stream.end();
    expect((await got).out).toBe('HELLO DOCKERODE\n');
    expect((await waited).StatusCode).toBe(0);
  });

  it('follows logs of a detached container and execs in it', async () => {
    const ct = await docker.createContainer({
      Image: 'busybox',
      Cmd: ['sh', '-c', 'for i in 1 2 3; do echo n$i; sleep 0.3; done; sleep 30'],
      HostConfig: { NetworkMode: 'none' },
    });
    await ct.start();
    const logStream = (await ct.logs({
      stdout: true,
      stderr: true,
      follow: true,
    })) as unknown as NodeJS.ReadableStream;
    let seen = '';
    const out = new PassThrough();
    out.on('data', (d) => {
      seen += d;
    });
    docker.modem.demuxStream(logStream, out, new PassThrough());
    await until(() => seen.includes('n3\n'), 'three followed lines');
    const exec = await ct.exec({
      Cmd: ['sh', '-c', 'echo from-exec; exit 2'],
      AttachStdout: true,
      AttachStderr: true,
    });
    const es = await exec.start({ hijack: true, stdin: false });
    expect((await demux(es)).out).toBe('from-exec\n');
    const info = await exec.inspect();
    expect([info.Running, info.ExitCode]).toEqual([false, 2]);
    await ct.stop({ t: 1 });
    await ct.remove();
  });
});
