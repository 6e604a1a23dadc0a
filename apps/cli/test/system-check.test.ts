// Damaged state and `corral system check [--repair]`: state files that do not parse fail the
// commands that need them with the file's name and the repair (never a stack trace), and
// leave the others working; system check finds what is damaged or left behind, --repair fixes
// what it can without losing data (damaged files go to quarantine/), then finds nothing.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type Result, Sandbox } from './helpers.js';

let s: Sandbox;
beforeEach(async () => {
  s = new Sandbox();
  expect((await s.corral(['run', '--rm', '--network', 'none', 'busybox', 'true'])).status).toBe(0);
});
afterEach(() => s.teardown());

/** A message of corral's own, naming `file` and the repair; no stack trace. */
function expectDamaged(r: Result, file: string): void {
  expect(r.stderr).toContain(file);
  expect(r.stderr).toMatch(/is damaged .*corral system check --repair/);
  expect(r.stderr).not.toMatch(/^\s+at /m);
}

async function check(
  repair = false,
): Promise<{ status: number | null; problems: string[]; repaired: string[] }> {
  const r = await s.corral(['system', 'check', ...(repair ? ['--repair'] : []), '--format', 'json']);
  const json = JSON.parse(r.out) as { findings: { problem: string; repaired?: string }[] };
  return {
    status: r.status,
    problems: json.findings.map((f) => f.problem),
    repaired: json.findings.flatMap((f) => (f.repaired ? [f.repaired] : [])),
  };
}

describe('damaged state files', () => {
  it('a damaged refs.json: ps works, run and images fail naming it, --repair sets it aside', async () => {
    const refs = join(s.root, 'image', 'refs.json');
    writeFileSync(refs, '{"refs": {"docker.io/library/busybox:lat');
    expect((await s.corral(['ps', '-a'])).status).toBe(0);
    const run = await s.corral(['run', '--rm', 'busybox', 'true']);
    expect(run.status).toBe(125);
    expectDamaged(run, refs);
    const images = await s.corral(['images']);
    expect(images.status).toBe(1);
    expectDamaged(images, refs);

    const found = await check();
    expect(found.status).toBe(1);
    expect(found.problems.join('\n')).toContain(refs);
    const fixed = await check(true);
    expect(fixed.status).toBe(0);
    expect(fixed.repaired.join('\n')).toMatch(/moved to .*quarantine/);
    expect(readdirSync(join(s.root, 'image', 'quarantine'))).toHaveLength(1); // kept, not deleted
    expect((await check()).status).toBe(0);
    // The image stayed, without its name: named again, it runs.
    const id = JSON.parse((await s.corral(['images', '--format', 'json'])).out).id as string;
    expect((await s.corral(['tag', id, 'busybox'])).status).toBe(0);
    expect((await s.corral(['run', '--rm', '--network', 'none', 'busybox', 'echo', 'ok'])).out).toBe('ok');
  });

  it('a damaged container record: ps names it, other containers run, --repair quarantines its folder', async () => {
    const id = (await s.corral(['create', '--network', 'none', 'busybox', 'true'])).out;
    const file = join(s.root, 'containers', id, 'container.json');
    writeFileSync(file, readFileSync(file, 'utf8').slice(0, 100));
    const ps = await s.corral(['ps', '-a']);
    expect(ps.status).toBe(1);
    expectDamaged(ps, file);
    expect((await s.corral(['run', '--rm', '--network', 'none', 'busybox', 'echo', 'ok'])).out).toBe('ok');
    const fixed = await check(true);
    expect(fixed.problems.join('\n')).toContain(file);
    expect(fixed.status).toBe(0);
    expect(existsSync(join(s.root, 'quarantine', `container-${id}`, 'container.json'))).toBe(true);
    expect((await s.corral(['ps', '-a'])).status).toBe(0);
    expect((await check()).status).toBe(0);
  });

  it('a damaged image or layer record names the file', async () => {
    const dir = join(s.root, 'image', 'images');
    const file = join(dir, readdirSync(dir)[0]);
    writeFileSync(file, 'null');
    const images = await s.corral(['images']);
    expect(images.status).toBe(1);
    expectDamaged(images, file);
    expect((await check(true)).repaired.join('\n')).toMatch(/moved to/);
    expect((await check()).status).toBe(0);
  });
});

describe('system check', () => {
  it('finds a corrupt blob; --repair quarantines it and unregisters the image that needs it, by name', async () => {
    const blobs = join(s.root, 'image', 'blobs', 'sha256');
    const layers = JSON.parse(
      readFileSync(join(s.root, 'image', 'images', readdirSync(join(s.root, 'image', 'images'))[0]), 'utf8'),
    ).layers as { digest: string }[];
    const blob = join(blobs, layers[0].digest.slice('sha256:'.length));
    const data = readFileSync(blob);
    data[200] ^= 0xff;
    writeFileSync(blob, data);
    const found = await check();
    expect(found.status).toBe(1);
    expect(found.problems.join('\n')).toContain(`blob ${layers[0].digest} holds data whose digest is`);
    const fixed = await check(true);
    expect(fixed.status).toBe(0);
    expect(fixed.repaired.join('\n')).toMatch(
      /unregistered with its names docker.io\/library\/busybox:latest/,
    );
    expect(existsSync(blob)).toBe(false);
    expect((await check()).status).toBe(0);
    // busybox is made again when next named.
    expect((await s.corral(['run', '--rm', '--network', 'none', 'busybox', 'echo', 'ok'])).out).toBe('ok');
  });

  it('finds a stopped container left mounted and with a cgroup; --repair takes both away', async () => {
    const id = (await s.corral(['create', '--network', 'none', 'busybox', 'true'])).out;
    const dir = join(s.root, 'containers', id);
    // What a run killed between its mount and its record leaves: a real overlay, a real cgroup.
    const lower = readdirSync(join(s.root, 'image', 'l')).map((l) => join(s.root, 'image', 'l', l));
    mkdirSync(join(dir, 'upper'), { recursive: true });
    mkdirSync(join(dir, 'work'), { recursive: true });
    execFileSync('mount', [
      '-t',
      'overlay',
      'overlay',
      '-o',
      `lowerdir=${lower.join(':')},upperdir=${join(dir, 'upper')},workdir=${join(dir, 'work')}`,
      join(dir, 'rootfs'),
    ]);
    const own = readFileSync('/proc/self/cgroup', 'utf8')
      .split('\n')
      .find((l) => l.split(':')[1] === 'pids')!
      .split(':')[2];
    const cgroup = join('/sys/fs/cgroup/pids', own, `corral-${id}`);
    mkdirSync(cgroup);
    try {
      const found = await check();
      expect(found.status).toBe(1);
      expect(found.problems.join('\n')).toMatch(/does not run but .*rootfs is mounted/);
      expect(found.problems.join('\n')).toMatch(/does not run but its cgroup corral-/);
      expect((await check(true)).status).toBe(0);
      expect(s.mounts().filter((m) => m.includes(id))).toEqual([]);
      expect(existsSync(cgroup)).toBe(false);
      expect((await check()).status).toBe(0);
      // The container itself is whole: it starts.
      expect((await s.corral(['start', id])).status).toBe(0);
      expect((await s.corral(['wait', id])).out).toBe('0');
    } finally {
      if (existsSync(cgroup)) rmdirSync(cgroup);
    }
  });

  it('temp files of dead writers are gone after the next command', async () => {
    const tmp = join(s.root, 'image', 'tmp', '4194305.1-blob-0123456789ab');
    writeFileSync(tmp, 'half a blob');
    expect((await check()).status).toBe(0);
    expect(existsSync(tmp)).toBe(false);
  });
});
