import { execFile, spawn } from 'node:child_process';
import {
  chownSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { corralBin } from '@corral/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Sandbox, until } from './helpers.js';
import { makeTar, tarNames } from './tar.js';

// corral cp with Docker's rules, on a running container and a stopped one.
const s = new Sandbox();
const host = join(s.root, 'host');
afterAll(() => s.teardown());

const ok = async (args: string[], input?: string) => {
  const r = await s.corral(args, input);
  if (r.status !== 0) throw new Error(`corral ${args.join(' ')}: ${r.status} ${r.stderr}`);
  return r;
};
const cat = async (path: string, ctr = 'box') => (await ok(['exec', ctr, 'cat', path])).stdout;

/** corral with raw bytes in and out (a tar on stdin or stdout). */
function corralRaw(
  args: string[],
  input?: Buffer,
): Promise<{ code: number; stdout: Buffer; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      ['--', corralBin, '--root', s.root, ...args],
      { encoding: 'buffer', maxBuffer: 64 << 20 },
      (err, stdout, stderr) =>
        resolve({
          code: err ? Number((err as { code?: number }).code ?? 1) : 0,
          stdout,
          stderr: stderr.toString(),
        }),
    );
    child.stdin?.end(input ?? Buffer.alloc(0));
  });
}

beforeAll(async () => {
  mkdirSync(host, { recursive: true });
  await ok([
    'run',
    '-d',
    '--name',
    'box',
    'busybox',
    'sh',
    '-c',
    'mkdir -p /data/sub && echo hello > /data/a.txt && echo deep > /data/sub/b && ln -s a.txt /data/link && touch /ready && sleep 600',
  ]);
  await until(
    async () => (await s.corral(['exec', 'box', 'test', '-e', '/ready'])).status === 0,
    'the setup',
  );
});

describe('corral cp out of a container', () => {
  it('copies a file into a folder, to a new name, and refuses a missing folder asserted with /', async () => {
    const out = join(host, 'out1');
    mkdirSync(out);
    const r = await ok(['cp', 'box:/data/a.txt', out]);
    expect(r.stderr).toBe(`Successfully copied 6B to ${out}\n`);
    expect(readFileSync(join(out, 'a.txt'), 'utf8')).toBe('hello\n');
    await ok(['cp', 'box:/data/a.txt', join(out, 'renamed')]);
    expect(readFileSync(join(out, 'renamed'), 'utf8')).toBe('hello\n');
    const missing = await s.corral(['cp', 'box:/data/a.txt', join(out, 'nodir/')]);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toContain('no such directory');
    const noParent = await s.corral(['cp', 'box:/data/a.txt', join(out, 'x', 'y')]);
    expect(noParent.stderr).toContain(`invalid output path: directory "${join(out, 'x')}" does not exist`);
  });

  it('copies a folder under its name, to a new name, and its content with /.', async () => {
    const out = join(host, 'out2');
    mkdirSync(out);
    await ok(['cp', 'box:/data', out]);
    expect(readdirSync(join(out, 'data')).sort()).toEqual(['a.txt', 'link', 'sub']);
    expect(readlinkSync(join(out, 'data', 'link'))).toBe('a.txt'); // a symlink stays a symlink
    await ok(['cp', 'box:/data', join(out, 'copy')]);
    expect(readFileSync(join(out, 'copy', 'sub', 'b'), 'utf8')).toBe('deep\n');
    mkdirSync(join(out, 'existing'));
    await ok(['cp', 'box:/data/.', join(out, 'existing')]);
    expect(readdirSync(join(out, 'existing')).sort()).toEqual(['a.txt', 'link', 'sub']);
    writeFileSync(join(out, 'afile'), 'x');
    const onFile = await s.corral(['cp', 'box:/data', join(out, 'afile')]);
    expect(onFile.status).toBe(1);
    expect(onFile.stderr).toContain('cannot copy directory');
  });

  it('follows a symlink source with -L, keeping the link name', async () => {
    const out = join(host, 'out3');
    mkdirSync(out);
    await ok(['cp', '-L', 'box:/data/link', out]);
    expect(readFileSync(join(out, 'link'), 'utf8')).toBe('hello\n');
    expect(statSync(join(out, 'link')).isFile()).toBe(true);
  });

  it('writes a tar to stdout with -', async () => {
    const r = await corralRaw(['cp', 'box:/data', '-']);
    expect(r.code).toBe(0);
    expect(tarNames(r.stdout).sort()).toEqual([
      'data/',
      'data/a.txt',
      'data/link',
      'data/sub/',
      'data/sub/b',
    ]);
  });

  it("says Docker's error for a missing file", async () => {
    const r = await s.corral(['cp', 'box:/nope', host]);
    expect([r.status, r.stderr.trim()]).toEqual([
      1,
      'corral: Could not find the file /nope in container box',
    ]);
  });
});

describe('corral cp into a container', () => {
  it('copies a file and a folder, over a file, into a folder given with a trailing /', async () => {
    writeFileSync(join(host, 'in.txt'), 'in\n');
    mkdirSync(join(host, 'tree', 'deeper'), { recursive: true });
    writeFileSync(join(host, 'tree', 'deeper', 'leaf'), 'leaf\n');
    await ok(['cp', join(host, 'in.txt'), 'box:/data/sub/']);
    expect(await cat('/data/sub/in.txt')).toBe('in\n');
    await ok(['cp', join(host, 'in.txt'), 'box:/data/a.txt']);
    expect(await cat('/data/a.txt')).toBe('in\n');
    await ok(['cp', join(host, 'tree'), 'box:/newtree']);
    expect(await cat('/newtree/deeper/leaf')).toBe('leaf\n');
    await ok(['cp', join(host, 'tree'), 'box:/data']);
    expect(await cat('/data/tree/deeper/leaf')).toBe('leaf\n');
    await ok(['cp', `${join(host, 'tree')}/.`, 'box:/data/sub']);
    expect(await cat('/data/sub/deeper/leaf')).toBe('leaf\n');
    const onFile = await s.corral(['cp', join(host, 'tree'), 'box:/data/a.txt']);
    expect(onFile.stderr).toContain('cannot copy directory');
    const noDir = await s.corral(['cp', join(host, 'in.txt'), 'box:/absent/']);
    expect(noDir.stderr).toContain('no such directory');
  });

  it('keeps owners with -a, makes them root without', async () => {
    writeFileSync(join(host, 'owned'), 'o');
    chownSync(join(host, 'owned'), 1234, 5678);
    await ok(['cp', join(host, 'owned'), 'box:/tmp/plain']);
    await ok(['cp', '-a', join(host, 'owned'), 'box:/tmp/kept']);
    expect((await ok(['exec', 'box', 'stat', '-c', '%u:%g', '/tmp/plain', '/tmp/kept'])).out).toBe(
      '0:0\n1234:5678',
    );
  });

  it('follows a host symlink with -L, copying its target under the link name', async () => {
    symlinkSync(join(host, 'in.txt'), join(host, 'hostlink'));
    await ok(['cp', join(host, 'hostlink'), 'box:/tmp/']);
    expect((await ok(['exec', 'box', 'readlink', '/tmp/hostlink'])).out).toBe(join(host, 'in.txt'));
    await ok(['cp', '-L', join(host, 'hostlink'), 'box:/tmp/followed']);
    expect(await cat('/tmp/followed')).toBe('in\n');
  });

  it('extracts a tar from stdin with -, only into a folder', async () => {
    const tar = makeTar([
      { name: 'piped/', type: 'dir' },
      { name: 'piped/f', body: 'from a pipe\n', mode: 0o600 },
    ]);
    expect((await corralRaw(['cp', '-', 'box:/tmp'], tar)).code).toBe(0);
    expect(await cat('/tmp/piped/f')).toBe('from a pipe\n');
    expect((await ok(['exec', 'box', 'stat', '-c', '%a', '/tmp/piped/f'])).out).toBe('600');
    const r = await corralRaw(['cp', '-', 'box:/data/a.txt'], tar);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('destination "box:/data/a.txt" must be a directory');
  });

  it('refuses bad arguments as docker does', async () => {
    expect((await s.corral(['cp', 'a', 'b'])).stderr).toContain('must specify at least one container source');
    expect((await s.corral(['cp', 'box:/a', 'box:/b'])).stderr).toContain(
      'copying between containers is not supported',
    );
    expect((await s.corral(['cp', 'nosuch:/a', host])).stderr).toContain('No such container');
  });
});

describe('corral cp with volumes and bind mounts', () => {
  it('reads and writes a named volume and a bind mount, refuses a read-only one', async () => {
    const bind = join(host, 'bound');
    mkdirSync(bind);
    writeFileSync(join(bind, 'b'), 'from the bind\n');
    await ok([
      'run',
      '-d',
      '--name',
      'vols',
      '-v',
      'cpvol:/vol',
      '-v',
      `${bind}:/mnt/ro:ro`,
      'busybox',
      'sh',
      '-c',
      'echo in-volume > /vol/x; sleep 600',
    ]);
    await until(
      async () => (await s.corral(['exec', 'vols', 'test', '-e', '/vol/x'])).status === 0,
      'the volume file',
    );
    await ok(['cp', 'vols:/vol/x', join(host, 'volx')]);
    expect(readFileSync(join(host, 'volx'), 'utf8')).toBe('in-volume\n');
    await ok(['cp', 'vols:/mnt/ro/b', join(host, 'bindb')]);
    expect(readFileSync(join(host, 'bindb'), 'utf8')).toBe('from the bind\n');
    writeFileSync(join(host, 'tovol'), 'to the volume\n');
    await ok(['cp', join(host, 'tovol'), 'vols:/vol/']);
    expect(await cat('/vol/tovol', 'vols')).toBe('to the volume\n');
    const ro = await s.corral(['cp', join(host, 'tovol'), 'vols:/mnt/ro/']);
    expect([ro.status, ro.stderr.trim()]).toEqual([1, 'corral: mounted volume is marked read-only']);
    expect(readdirSync(bind)).toEqual(['b']);
    await ok(['stop', '-t', '0', 'vols']);
    await ok(['cp', join(host, 'tovol'), 'vols:/vol/stopped']);
    await ok(['start', 'vols']);
    expect(await cat('/vol/stopped', 'vols')).toBe('to the volume\n');
    await ok(['rm', '-f', '-v', 'vols']);
    await ok(['volume', 'rm', 'cpvol']);
  });
});

describe('corral cp with a stopped container', () => {
  it('copies in and out through its root mounted for the copy, and leaves no mount', async () => {
    await ok(['create', '--name', 'cold', 'busybox', 'cat', '/tmp/given']);
    writeFileSync(join(host, 'given'), 'given while created\n');
    await ok(['cp', join(host, 'given'), 'cold:/tmp/']);
    await ok(['cp', 'cold:/tmp/given', join(host, 'back')]);
    expect(readFileSync(join(host, 'back'), 'utf8')).toBe('given while created\n');
    expect(s.mounts().filter((l) => l.includes('/cp-'))).toEqual([]);
    await ok(['start', 'cold']);
    expect((await ok(['wait', 'cold'])).out).toBe('0');
    expect((await ok(['logs', 'cold'])).stdout).toBe('given while created\n');
  });

  it('takes off the root a killed copy left mounted when the container is removed', async () => {
    await ok(['create', '--name', 'killed', 'busybox', 'true']);
    // A copy in from a stdin that never ends holds the stopped container's root mounted.
    const child = spawn(process.execPath, ['--', corralBin, '--root', s.root, 'cp', '-', 'killed:/tmp'], {
      stdio: ['pipe', 'ignore', 'ignore'],
    });
    await until(
      async () => s.mounts().some((l) => /\/cp-\d+-[0-9a-f]+ /.test(l)),
      'the copy to mount the root',
    );
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    expect(s.mounts().some((l) => l.includes('/cp-'))).toBe(true);
    await ok(['rm', 'killed']);
    expect(s.mounts().filter((l) => l.includes('/cp-'))).toEqual([]);
  });
});
