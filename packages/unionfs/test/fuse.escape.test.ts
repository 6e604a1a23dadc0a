// The fuse server runs as root on the host for a container that may be hostile. These tests
// run the attacks for real against a canary folder outside the layers: a symlink swapped in
// for a folder behind the server's back, and a container racing renames of a folder and a
// symlink to the canary against lookups, creates and reads under that name.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { Cleanups } from '@corral/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import { FuseUnionFs } from '../src/index.js';

const cleanups = new Cleanups();
afterEach(() => cleanups.run());

/** A union over one lower layer holding busybox, and a canary folder beside it. */
async function setup() {
  const root = cleanups.tempDir('unionfs-escape', 'lower/bin', 'upper', 'work', 'merged', 'canary');
  copyFileSync('/bin/busybox', join(root, 'lower/bin/busybox'));
  const canary = join(root, 'canary');
  writeFileSync(join(canary, 'secret'), 'host secret\n');
  const m = await new FuseUnionFs().mount({
    lower: [join(root, 'lower')],
    upper: join(root, 'upper'),
    work: join(root, 'work'),
    target: join(root, 'merged'),
  });
  cleanups.add(() => m.unmount({ detach: true }));
  return { root, canary, merged: join(root, 'merged'), upper: join(root, 'upper') };
}

describe('fuse server: paths stay inside the layers', () => {
  it('a folder swapped for a symlink to the host behind its back leads nowhere', async () => {
    const { canary, merged, upper } = await setup();
    mkdirSync(join(merged, 'd/e'), { recursive: true });
    writeFileSync(join(merged, 'd/a'), 'a');
    statSync(join(merged, 'd/e')); // the kernel and the server know d and d/e
    // What no container can do, but a bug or a stale table would amount to: upper's d is now
    // a symlink to the canary while the server still has d as a folder. The server either
    // keeps reaching the folder it had (its fd follows it to d.moved) or refuses the symlink;
    // it never follows it. The container (a chroot of the union) resolves the symlink itself,
    // inside the union, where the canary's path leads nowhere.
    renameSync(join(upper, 'd'), join(upper, 'd.moved'));
    symlinkSync(canary, join(upper, 'd'));
    const out = execFileSync(
      'chroot',
      [
        merged,
        '/bin/busybox',
        'sh',
        '-c',
        'echo x > /d/pwned; echo x > /d/e/pwned; mkdir /d/sub; cat /d/secret /d/e/../secret; ls -a /d /d/e; mv /d/a /d/b; true',
      ],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] },
    );
    expect(out).not.toContain('secret');
    expect(readdirSync(canary)).toEqual(['secret']);
    expect(readFileSync(join(canary, 'secret'), 'utf8')).toBe('host secret\n');
  });

  it('renames of a folder and a symlink to the host raced against lookups, creates and reads', async () => {
    const { canary, merged } = await setup();
    mkdirSync(join(merged, 'd'));
    // Inside a chroot of the union, as a container sees it: the symlink names the canary's
    // host path, which resolves inside the union for the container; only a server that
    // followed it on the host would reach the canary.
    const scripts = [
      `while :; do mv /d /d2; ln -s ${canary} /d; rm -f /d; mv /d2 /d; done`,
      `while :; do ln -s ${canary} /e; rm -f /e; mkdir /e; rmdir /e; done`,
      'while :; do echo pwned > /d/p; mkdir /d/x; mv /d/x /d/y; rmdir /d/y; cat /d/secret >> /leak; ls /d; done',
      'while :; do cat /d/secret /e/secret >> /leak; echo pwned > /e/p; ls -l /d/ /e/; stat /d/secret && echo seen >> /seen; done',
    ];
    const racers: ChildProcess[] = scripts.map((s) =>
      spawn('chroot', [merged, '/bin/busybox', 'sh', '-c', s], { stdio: 'ignore' }),
    );
    const ended = racers.map((p) => new Promise((resolve) => p.on('exit', resolve)));
    cleanups.add(async () => {
      for (const p of racers) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
      await Promise.all(ended);
    });
    await new Promise((resolve) => setTimeout(resolve, 8000));
    for (const p of racers) p.kill('SIGKILL');
    await Promise.all(ended);
    expect(readdirSync(canary)).toEqual(['secret']);
    expect(readFileSync(join(canary, 'secret'), 'utf8')).toBe('host secret\n');
    expect(existsSync(join(merged, 'leak')) ? readFileSync(join(merged, 'leak'), 'utf8') : '').toBe('');
    expect(existsSync(join(merged, 'seen'))).toBe(false);
    // The union still works after the race.
    writeFileSync(join(merged, 'after'), 'ok');
    expect(readFileSync(join(merged, 'after'), 'utf8')).toBe('ok');
  });
});
