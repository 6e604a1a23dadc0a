import { execFile } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { corralBin, exec, removeTree, tempDir } from '@corral/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Sandbox, until } from './helpers.js';
import { makeTar } from './tar.js';

// docker cp's escape class (CVE-2018-15664 and its kin): a container that controls the paths
// a host-side copy walks. Each attack runs for real against a canary folder on the host, which
// must read the same afterwards, and whose secret must never come out of a copy.
// CORRAL_CP_ESCAPE_BIN runs the copies with another build of the CLI: one whose engine
// resolves by host path strings must fail these tests (checked so; see the CLI README).
const bin = process.env.CORRAL_CP_ESCAPE_BIN ?? corralBin;
const s = new Sandbox();
const canary = tempDir('cp-canary');
const host = join(s.root, 'host');
const SECRET = 'HOST-SECRET\n';
const ORIGINAL = 'HOST-ORIGINAL\n';

/** Every file under the canary folder with its content. */
const canaryState = (dir = canary, prefix = ''): string[] =>
  readdirSync(dir, { withFileTypes: true })
    .sort((a, b) => a.name.localeCompare(b.name))
    .flatMap((e) =>
      e.isDirectory()
        ? [`${prefix}${e.name}/`, ...canaryState(join(dir, e.name), `${prefix}${e.name}/`)]
        : [`${prefix}${e.name}=${readFileSync(join(dir, e.name), 'utf8')}`],
    );
const PRISTINE = [`f=${ORIGINAL}`, 'in/', `in/keep=${ORIGINAL}`, `secret=${SECRET}`];

afterAll(async () => {
  await s.teardown();
  removeTree(canary);
});

/** corral with the build under test (setup and checks use it too). */
const corral = (args: string[]) => exec(process.execPath, ['--', bin, '--root', s.root, ...args]);

const ok = async (args: string[]) => {
  const r = await corral(args);
  if (r.status !== 0) throw new Error(`corral ${args.join(' ')}: ${r.status} ${r.stderr}`);
  return r;
};

function corralStdin(args: string[], input: Buffer): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, ['--', bin, '--root', s.root, ...args], (err, _o, stderr) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stderr: String(stderr) }),
    );
    child.stdin?.end(input);
  });
}

// The container swaps /w/d between a real folder and a symlink to the canary (its host path)
// as fast as it can, while the host copies through /w/d.
const RACER = [
  'mkdir -p /w/d && echo inside > /w/d/secret && echo inside > /w/d/f && ln -s "$CANARY" /w/d.link',
  'ln -s "$CANARY" /w/esc && ln -s "$CANARY/secret" /w/esc-secret',
  // /w/e is always a symlink, flipped between a folder inside and the canary.
  'mkdir -p /w/real/in && (while :; do ln -sfn real /w/e; ln -sfn "$CANARY" /w/e; done) &',
  'touch /ready',
  // Mostly a folder (so copies get through), a symlink to the host for a few ms each round.
  'while :; do usleep 20000; mv /w/d /w/d.dir; mv /w/d.link /w/d; usleep 5000; mv /w/d /w/d.link; mv /w/d.dir /w/d; done',
].join('\n');

beforeAll(async () => {
  writeFileSync(join(canary, 'f'), ORIGINAL);
  writeFileSync(join(canary, 'secret'), SECRET);
  mkdirSync(join(canary, 'in'));
  writeFileSync(join(canary, 'in', 'keep'), ORIGINAL);
  mkdirSync(host, { recursive: true });
  await ok(['run', '-d', '--name', 'racer', '-e', `CANARY=${canary}`, 'busybox', 'sh', '-c', RACER]);
  await until(
    async () => (await corral(['exec', 'racer', 'test', '-e', '/ready'])).status === 0,
    'the racer',
  );
});

describe('a container racing a folder against a symlink to the host', () => {
  it('never lets cp out read the host file, 30 times', async () => {
    let copied = 0;
    for (let i = 0; i < 30; i++) {
      const out = join(host, `out-${i}`);
      const r = await corral(['cp', 'racer:/w/d/secret', out]);
      if (r.status !== 0) continue; // the path was absent or a link at that moment: refused
      copied++;
      expect(readFileSync(out, 'utf8')).toBe('inside\n');
    }
    expect(canaryState()).toEqual(PRISTINE);
    expect(copied).toBeGreaterThan(0); // the race was run, not refused every time
  }, 300_000);

  it('never lets cp in write through a symlink flipped to the host, 12 times', async () => {
    const src = join(host, 'src');
    mkdirSync(src, { recursive: true });
    for (let i = 0; i < 20; i++) writeFileSync(join(src, `x${i}`), 'PWNED\n');
    writeFileSync(join(src, 'secret'), 'PWNED\n');
    let copied = 0;
    // /w/e/in: the flip is inside the path, so no symlink is left for the client side to follow.
    for (let i = 0; i < 12; i++)
      if ((await corral(['cp', `${src}/.`, 'racer:/w/e/in'])).status === 0) copied++;
    expect(canaryState()).toEqual(PRISTINE);
    expect(copied).toBeGreaterThan(0);
    // What was copied is in the container's folder.
    expect((await ok(['exec', 'racer', 'cat', '/w/real/in/secret'])).stdout).toBe('PWNED\n');
  }, 300_000);
});

describe('symlinks in the container that point at host paths', () => {
  it('resolve inside the container for cp out, -L too', async () => {
    const a = await corral(['cp', 'racer:/w/esc/secret', join(host, 'esc-out')]);
    expect(a.status).toBe(1);
    expect(a.stderr).toContain('Could not find the file');
    const b = await corral(['cp', '-L', 'racer:/w/esc-secret', join(host, 'esc-out2')]);
    expect(b.status).toBe(1);
    // Without -L the link itself comes out, as a link, and nothing follows it.
    await ok(['cp', 'racer:/w/esc-secret', join(host, 'esc-link')]);
    expect(readdirSync(host)).not.toContain('esc-out');
    expect(canaryState()).toEqual(PRISTINE);
  });

  it('resolve inside the container for cp in: a folder link and a file link as destinations', async () => {
    writeFileSync(join(host, 'secret'), 'PWNED\n');
    expect((await corral(['cp', join(host, 'secret'), 'racer:/w/esc/'])).status).toBe(1);
    expect((await corral(['cp', join(host, 'secret'), 'racer:/w/esc-secret'])).status).toBe(1);
    expect(canaryState()).toEqual(PRISTINE);
  });

  it('resolve inside a stopped container too', async () => {
    await ok(['create', '--name', 'still', 'busybox', 'true']);
    await corralStdin(['cp', '-', 'still:/'], makeTar([{ name: 'esc', type: 'symlink', linkname: canary }]));
    writeFileSync(join(host, 'secret'), 'PWNED\n');
    expect((await corral(['cp', join(host, 'secret'), 'still:/esc/'])).status).toBe(1);
    expect((await corral(['cp', 'still:/esc/secret', join(host, 'still-out')])).status).toBe(1);
    expect(canaryState()).toEqual(PRISTINE);
    await ok(['rm', 'still']);
  });
});

describe('a volume whose symlinks point at host paths', () => {
  it('resolves them inside the volume: nothing is read from or written to the host', async () => {
    await ok([
      'run',
      '-d',
      '--name',
      'withvol',
      '-v',
      'escvol:/vol',
      '-e',
      `CANARY=${canary}`,
      'busybox',
      'sh',
      '-c',
      'ln -s "$CANARY" /vol/esc; sleep 600',
    ]);
    await until(
      async () => (await corral(['exec', 'withvol', 'test', '-L', '/vol/esc'])).status === 0,
      'the link',
    );
    writeFileSync(join(host, 'secret'), 'PWNED\n');
    expect((await corral(['cp', join(host, 'secret'), 'withvol:/vol/esc/'])).status).toBe(1);
    expect((await corral(['cp', 'withvol:/vol/esc/secret', join(host, 'vol-out')])).status).toBe(1);
    expect(canaryState()).toEqual(PRISTINE);
    await ok(['rm', '-f', '-v', 'withvol']);
    await ok(['volume', 'rm', 'escvol']);
  });
});

describe('hostile tars given to cp in', () => {
  it('refuses entries that climb out with ..', async () => {
    const depth = '../'.repeat(12);
    const r = await corralStdin(
      ['cp', '-', 'racer:/tmp'],
      makeTar([{ name: `${depth}${canary.slice(1)}/f`, body: 'PWNED\n' }]),
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('climbs out of the destination');
    expect(canaryState()).toEqual(PRISTINE);
  });

  it('keeps absolute names beneath the destination', async () => {
    await ok(['exec', 'racer', 'mkdir', '/tmp/abs']);
    const r = await corralStdin(
      ['cp', '-', 'racer:/tmp/abs'],
      makeTar([{ name: `${canary}/f`, body: 'PWNED\n' }]),
    );
    expect(r.code).toBe(0);
    expect((await ok(['exec', 'racer', 'cat', `/tmp/abs${canary}/f`])).stdout).toBe('PWNED\n');
    expect(canaryState()).toEqual(PRISTINE);
  });

  it('writes a file under a symlink the tar made beneath the destination, not on the host', async () => {
    await ok(['exec', 'racer', 'mkdir', '/tmp/sym']);
    const r = await corralStdin(
      ['cp', '-', 'racer:/tmp/sym'],
      makeTar([
        { name: 'esc', type: 'symlink', linkname: canary },
        { name: 'esc/f', body: 'PWNED\n' },
        { name: 'up', type: 'symlink', linkname: '../../../../../../../..' },
        { name: `up${canary}/secret`, body: 'PWNED\n' },
      ]),
    );
    expect(r.code).toBe(0);
    // Both landed beneath the destination, as if it were the root (a chroot there).
    const inside = `/tmp/sym${canary}`;
    expect((await ok(['exec', 'racer', 'cat', `${inside}/f`, `${inside}/secret`])).stdout).toBe(
      'PWNED\nPWNED\n',
    );
    expect(canaryState()).toEqual(PRISTINE);
  });

  it('refuses a hard link to a host file through a symlink (no host file is linked in)', async () => {
    await ok(['exec', 'racer', 'mkdir', '/tmp/hl']);
    const r = await corralStdin(
      ['cp', '-', 'racer:/tmp/hl'],
      makeTar([
        { name: 'to', type: 'symlink', linkname: canary },
        { name: 'grab', type: 'link', linkname: 'to/secret' },
      ]),
    );
    expect(r.code).toBe(1);
    const leaked = await corral(['exec', 'racer', 'cat', '/tmp/hl/grab']);
    expect(leaked.stdout).not.toContain('HOST-SECRET');
    const up = await corralStdin(
      ['cp', '-', 'racer:/tmp/hl'],
      makeTar([{ name: 'up', type: 'link', linkname: `${'../'.repeat(12)}${canary.slice(1)}/secret` }]),
    );
    expect(up.code).toBe(1);
    expect(up.stderr).toContain('climbs out of the destination');
    expect(canaryState()).toEqual(PRISTINE);
  });
});
