import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  busyboxRootfs,
  Cleanups,
  exec,
  freePort,
  mountsUnder,
  must,
  removeTree,
  tempDir,
  unmountUnder,
  unmountUnderSync,
  until,
} from '../src/index.js';

const cleanup = new Cleanups();
afterEach(() => cleanup.run());

describe('until', () => {
  it('returns the first truthy value of a sync or async condition', async () => {
    let n = 0;
    expect(await until(() => ++n >= 3 && n, 'three calls')).toBe(3);
    expect(await until(async () => 'yes', 'an answer')).toBe('yes');
  });

  it('fails with what it waited for', async () => {
    await expect(until(() => false, 'the impossible', 50)).rejects.toThrow(
      'timed out waiting for the impossible',
    );
  });
});

describe('Cleanups', () => {
  it('runs every step, last added first, and throws the first failure', async () => {
    const c = new Cleanups();
    const order: number[] = [];
    c.add(() => order.push(1));
    c.add(() => {
      throw new Error('two');
    });
    c.add(async () => {
      order.push(3);
      throw new Error('three');
    });
    await expect(c.run()).rejects.toThrow('three');
    expect(order).toEqual([3, 1]);
    expect(c.size).toBe(0);
  });

  it('removes its temp folders, unmounting what a test left mounted in them', async () => {
    const c = new Cleanups();
    const dir = c.tempDir('testkit', 'a/b');
    expect(dir).toMatch(/\/corral-testkit-[^/]+$/);
    expect(existsSync(join(dir, 'a/b'))).toBe(true);
    await must('mount', ['-t', 'tmpfs', 'testkit', join(dir, 'a')]);
    mkdirSync(join(dir, 'a/c'));
    await must('mount', ['-t', 'tmpfs', 'testkit', join(dir, 'a/c')]);
    expect(mountsUnder(dir)).toEqual([join(dir, 'a/c'), join(dir, 'a')]);
    await c.run();
    expect(existsSync(dir)).toBe(false);
    expect(mountsUnder(dir)).toEqual([]);
  });
});

describe('mounts', () => {
  it('takes off mounts deepest first, names with spaces too', async () => {
    const dir = cleanup.tempDir('testkit');
    const spaced = join(dir, 'with space');
    mkdirSync(spaced);
    await must('mount', ['-t', 'tmpfs', 'testkit', spaced]);
    expect(mountsUnder(dir)).toEqual([spaced]);
    expect(unmountUnderSync(dir)).toEqual([spaced]);
    expect(mountsUnder(dir)).toEqual([]);
    await must('mount', ['-t', 'tmpfs', 'testkit', spaced]);
    expect(await unmountUnder(dir)).toEqual([spaced]);
    expect(mountsUnder(dir)).toEqual([]);
  });
});

describe('exec', () => {
  it('collects output and the exit status, feeds input, and never throws for a failure', async () => {
    const r = await exec('sh', ['-c', 'cat; echo err >&2; exit 3'], { input: 'in\n' });
    expect(r).toMatchObject({ status: 3, stdout: 'in\n', stderr: 'err\n', out: 'in' });
    await expect(must('sh', ['-c', 'echo nope >&2; exit 2'])).rejects.toThrow(/exited 2[\s\S]*nope/);
  });
});

describe('freePort', () => {
  it('finds a loopback port one can listen on', async () => {
    const port = await freePort();
    expect(port).toBeGreaterThan(0);
    const net = await import('node:net');
    const srv = net.createServer().listen(port, '127.0.0.1');
    await new Promise((r) => srv.once('listening', r));
    await new Promise((r) => srv.close(r));
  });
});

describe('busyboxRootfs', () => {
  it('makes a root filesystem that runs sh', async () => {
    const root = busyboxRootfs(join(cleanup.tempDir('testkit'), 'rootfs'), 'etc', 'tmp');
    expect(readlinkSync(join(root, 'bin/sh'))).toBe('busybox');
    expect(existsSync(join(root, 'etc'))).toBe(true);
    writeFileSync(join(root, 'tmp/x'), 'hi');
    const r = await exec(join(root, 'bin/sh'), ['-c', `${join(root, 'bin/cat')} ${join(root, 'tmp/x')}`]);
    expect(r.out).toBe('hi');
  });

  it('names a temp folder after its test', () => {
    const dir = tempDir('kit', 'x');
    cleanup.add(() => removeTree(dir));
    expect(dir).toMatch(/corral-kit-/);
    expect(existsSync(join(dir, 'x'))).toBe(true);
  });

  it('removes a folder that another process keeps writing a file into for a while', async () => {
    const dir = tempDir('kit-busy');
    // Enough to list and remove that the writer adds one meanwhile, every time.
    for (let i = 0; i < 2000; i++) writeFileSync(join(dir, `old${i}`), '');
    // As a keeper appends its last event to a root being removed, but without pause: new files
    // keep coming after each listing of the folder.
    const writer = spawn(
      process.execPath,
      [
        '-e',
        `const fs = require('fs'); const end = Date.now() + 400; let n = 0; fs.writeFileSync(process.argv[1] + '/e', '');
         process.stdout.write('ready\\n');
         while (Date.now() < end) try { fs.writeFileSync(process.argv[1] + '/e' + n++, 'x'); } catch {}`,
        dir,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const exited = new Promise((r) => writer.once('exit', r));
    await new Promise((r) => writer.stdout.once('data', r));
    try {
      removeTree(dir);
      expect(existsSync(dir)).toBe(false);
    } finally {
      await exited;
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
