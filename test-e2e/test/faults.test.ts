// Fault injection: commands SIGKILLed at random moments (seeded: CORRAL_FAULT_SEED), a full
// disk (a small tmpfs as the data root), commands racing each other. After each fault the
// root must be whole (`corral system check`, itself the next command, finds nothing), hold
// nothing of what was interrupted (records, mounts, cgroups, processes, temp files), and exit
// codes must be the program's where it ran to its end. CORRAL_FAULT_N raises the number of
// kills per command (default 1) for a longer soak.

import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, promises as fs, mkdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bounded,
  composeArchive,
  expectClearError,
  expectNothingLeft,
  folderOf,
  killAfter,
  N,
  processesEnd,
  SEED,
  seeded,
  storeSnapshot,
  timeOf,
} from './fault-kit.js';
import {
  Corral,
  mountsUnder,
  type Registry,
  removeCgroups,
  startRegistry,
  tempRoot,
  uniqueName,
  unmountUnder,
} from './helpers.js';

const random = seeded(SEED);
/** A moment inside a command that takes `ms`: mostly past Node's start, before its end. */
const moment = (ms: number) => Math.round(ms * (0.15 + 0.85 * random()));

// Item 3 of issue 17 (a keeper that outlives a killed attached run or watcher and records how
// its program ended): until it is in, the tests that need it are skipped.
const KEEPER = existsSync(new URL('../../packages/engine/src/keeper.ts', import.meta.url));

let tmp = '';
let registry: Registry | undefined;
const corrals: Corral[] = [];
/** Every container's cgroup goes beneath this one (per hierarchy, beneath ours). */
const cgroupParent = uniqueName('corral-faults');
let smallRoot = '';

const IMG = 'fault/img:1';
let imgTar = '';
let bigTar = '';
let pulled = '';
let bigPulled = '';

interface PsRow {
  name: string;
  state: string;
  exitCode: number | null;
}

function corral(name: string): Corral {
  const c = new Corral(path.join(tmp, name));
  corrals.push(c);
  return c;
}

/** Does the root name the image (read from refs.json: no command in between)? */
function named(c: Corral, ref: string): boolean {
  try {
    const refs = JSON.parse(readFileSync(path.join(c.root, 'image', 'refs.json'), 'utf8')).refs;
    return Object.keys(refs).some((n) => n.endsWith(ref));
  } catch {
    return false;
  }
}

async function must(c: Corral, args: string[]) {
  const r = await bounded(c, args);
  if (r.status !== 0) throw new Error(`corral ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return r;
}

async function psRows(c: Corral): Promise<PsRow[]> {
  const out = (await must(c, ['ps', '-a', '--format', 'json'])).out;
  return out ? out.split('\n').map((l) => JSON.parse(l) as PsRow) : [];
}

beforeAll(async () => {
  tmp = await tempRoot('faults');
  const prep = corral('prep');
  // Made with tar, not the engine: busybox plus 4 MB of noise and 300 small files (so that a
  // load, pull or commit lasts long enough to be cut in its middle), and 24 MB of noise alone
  // (more than the small disk below holds).
  const bb = path.join(tmp, 'busybox.tar');
  await must(prep, ['save', '-o', bb, 'busybox']);
  const many: Record<string, string> = {};
  for (let i = 1; i <= 300; i++) many[`many/f${i}`] = `${i}\n`;
  imgTar = path.join(tmp, 'img.tar');
  composeArchive(
    imgTar,
    tmp,
    IMG,
    [folderOf(tmp, 'noise', { noise: randomBytes(4_000_000) }), folderOf(tmp, 'many', many)],
    bb,
  );
  bigTar = path.join(tmp, 'big.tar');
  composeArchive(bigTar, tmp, 'fault/big:1', [folderOf(tmp, 'big', { big: randomBytes(24_000_000) })]);
  registry = await startRegistry(path.join(tmp, 'registry'));
  pulled = `${registry.host}/fault/img:1`;
  bigPulled = `${registry.host}/fault/big:1`;
  await must(prep, ['load', '-i', imgTar]);
  await must(prep, ['load', '-i', bigTar]);
  for (const [from, to] of [
    [IMG, pulled],
    ['fault/big:1', bigPulled],
  ]) {
    await must(prep, ['tag', from, to]);
    await must(prep, ['push', to]);
  }
}, 180_000);

afterAll(async () => {
  await registry?.stop();
  for (const c of corrals) await c.removeContainers().catch(() => {});
  if (smallRoot && mountsUnder(smallRoot).length) execFileSync('umount', ['-l', smallRoot]);
  if (tmp) {
    await unmountUnder(tmp);
    if (!mountsUnder(tmp).length) await fs.rm(tmp, { recursive: true, force: true });
  }
  const left = removeCgroups(cgroupParent);
  if (left.length) throw new Error(`cgroups left: ${left.join(', ')}`);
}, 120_000);

describe(`kill -9 at random moments (seed ${SEED}, ${N} each)`, () => {
  it('of load and pull: the image is whole or absent, and the next one works', async () => {
    for (const [name, args, ref] of [
      ['load', ['load', '-i', imgTar], IMG],
      ['pull', ['pull', pulled], pulled],
    ] as const) {
      const c = corral(name);
      const ms = await timeOf(() => must(c, [...args]));
      await must(c, ['rmi', ref]);
      for (let i = 0; i < N; i++) {
        const k = await killAfter(c, [...args], moment(ms));
        if (k.signal === null) expect(k.status).toBe(0);
        await processesEnd(k);
        await expectNothingLeft(c); // `system check` is the next command
        if (named(c, ref)) await must(c, ['rmi', ref]);
      }
      await must(c, [...args]);
      expect(named(c, ref)).toBe(true);
      await expectNothingLeft(c);
    }
  });

  it('of commit: the new image is whole or absent, the container untouched', async () => {
    const c = corral('commit');
    await must(c, ['load', '-i', imgTar]);
    await must(c, [
      'run',
      '--name',
      'src',
      '--network',
      'none',
      '--cgroup-parent',
      cgroupParent,
      IMG,
      'cp',
      '/noise',
      '/noise2',
    ]);
    const ms = await timeOf(() => must(c, ['commit', 'src', 'fault/c:0']));
    for (let i = 1; i <= N; i++) {
      const k = await killAfter(c, ['commit', 'src', `fault/c:${i}`], moment(ms));
      if (k.signal === null) expect(k.status).toBe(0);
      await processesEnd(k);
      await expectNothingLeft(c, cgroupParent);
      if (named(c, `fault/c:${i}`))
        await must(c, ['run', '--rm', '--network', 'none', `fault/c:${i}`, 'cmp', '/noise', '/noise2']);
    }
  });

  it('of save: the archive is whole or absent (never half of one under its name)', async () => {
    const c = corral('save');
    await must(c, ['load', '-i', imgTar]);
    const whole = path.join(tmp, 'saved-whole.tar');
    const ms = await timeOf(() => must(c, ['save', '-o', whole, IMG]));
    for (let i = 0; i < N; i++) {
      const out = path.join(tmp, `saved-${i}.tar`);
      const k = await killAfter(c, ['save', '-o', out, IMG], moment(ms));
      if (k.signal === null) expect(k.status).toBe(0);
      if (existsSync(out)) expect(statSync(out).size).toBe(statSync(whole).size);
      await expectNothingLeft(c);
    }
  });

  const program = ['busybox', 'sh', '-c', 'echo hi; sleep 0.3; exit 7'];

  /** Kills `run [extra] --name run-I ...program` N times at random moments; `check` sees its ps row after. */
  async function killRuns(c: Corral, extra: string[], check: (name: string, row?: PsRow) => Promise<void>) {
    const ms = await timeOf(async () => {
      const r = await bounded(c, ['run', '--rm', '--cgroup-parent', cgroupParent, ...program]);
      expect(r.status).toBe(7);
    });
    for (let i = 0; i < N * 2; i++) {
      const name = `run-${i}`;
      const args = ['run', ...extra, '--name', name, '--cgroup-parent', cgroupParent, ...program];
      // Half of them early (while it creates, mounts, starts), half anywhere.
      const k = await killAfter(c, args, i % 2 ? moment(ms) : moment(ms / 2));
      if (k.signal === null) expect(k.status).toBe(7); // it ran to its end: the program's code
      await processesEnd(k);
      const row = (await psRows(c)).find((r) => r.name === name); // the next command
      await check(name, row);
      await expectNothingLeft(c, cgroupParent);
    }
  }

  it('of run --rm, while it creates and while it runs: nothing is left after the next command', async () => {
    await killRuns(corral('run-rm'), ['--rm'], async (_name, row) => {
      expect(row).toBeUndefined();
    });
  });

  // Item 3 of issue 17: a killed attached run (no --rm) left its mount, runtime state and
  // cgroup, and its status said 255 whatever the program returned.
  it.skipIf(!KEEPER)(
    "of run, while it creates and while it runs: the exit code is the program's, nothing else is left",
    async () => {
      const c = corral('run');
      await killRuns(c, [], async (name, row) => {
        if (!row) return;
        if (row.state === 'running') await must(c, ['wait', name]);
        // Its program ran to its end (it printed): the code recorded is the program's.
        const logs = (await must(c, ['logs', name])).out;
        const now = (await psRows(c)).find((r) => r.name === name)!;
        if (logs.includes('hi') && now.state === 'exited') expect(now.exitCode).toBe(7);
      });
    },
  );

  it('of rm -f of a running container: the retried rm removes everything', async () => {
    const c = corral('rm');
    const start = async () =>
      (
        await must(c, [
          'run',
          '-d',
          '--network',
          'none',
          '--cgroup-parent',
          cgroupParent,
          'busybox',
          'sleep',
          '60',
        ])
      ).out;
    const first = await start();
    const ms = await timeOf(() => must(c, ['rm', '-f', first]));
    for (let i = 0; i < N; i++) {
      const id = await start();
      const k = await killAfter(c, ['rm', '-f', id], moment(ms));
      if (k.signal === null) expect(k.status).toBe(0);
      await processesEnd(k);
      const again = await bounded(c, ['rm', '-f', id]); // the next command
      if (again.status !== 0) expect(again.stderr).toMatch(/No such container/);
      await expectNothingLeft(c, cgroupParent);
      expect(existsSync(path.join(c.root, 'containers', id))).toBe(false);
    }
  });

  // Item 3 of issue 17: a SIGKILLed watcher (keeper) no longer leaves a container that `ps`
  // calls Up with a 255 and lost lines: the container ends with it (137, as Docker's does when
  // its shim is killed) or has ended (its own code and output), `logs -f` ends, nothing is left.
  it.skipIf(!KEEPER)(
    "of a detached container's watcher: its end is recorded as it was, nothing is left",
    async () => {
      const c = corral('watcher');
      for (let i = 0; i < N; i++) {
        const id = (
          await must(c, [
            'run',
            '-d',
            '--network',
            'none',
            '--cgroup-parent',
            cgroupParent,
            'busybox',
            'sh',
            '-c',
            'echo start; sleep 0.6; echo done; exit 5',
          ])
        ).out;
        const record = JSON.parse(
          await fs.readFile(path.join(c.root, 'containers', id, 'container.json'), 'utf8'),
        );
        const watcher = record.state.watcherPid as number;
        await new Promise((r) => setTimeout(r, moment(900)));
        try {
          process.kill(watcher, 'SIGKILL');
        } catch {}
        const code = (await must(c, ['wait', id])).out; // it ends: never Up for good
        const logs = (await must(c, ['logs', '-f', id])).out; // and so does logs -f
        if (code === '5') expect(logs).toBe('start\ndone');
        else {
          expect(code).toBe('137');
          expect(logs).toMatch(/^start/);
        }
        await must(c, ['rm', id]);
        await expectNothingLeft(c, cgroupParent);
      }
    },
  );
});

describe('a full disk (a 32 MB tmpfs as the data root)', () => {
  let c: Corral;

  beforeAll(async () => {
    smallRoot = path.join(tmp, 'small');
    mkdirSync(smallRoot, { mode: 0o700 });
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=32m,mode=0700', 'tmpfs', smallRoot]);
    c = new Corral(smallRoot);
    await must(c, ['run', '--rm', '--network', 'none', 'busybox', 'true']);
  });

  afterAll(async () => {
    await c?.removeContainers().catch(() => {});
    if (smallRoot) {
      await unmountUnder(smallRoot);
      if (mountsUnder(smallRoot).length) execFileSync('umount', [smallRoot]);
    }
  });

  const expectDiskFull = (stderr: string) => {
    expectClearError(stderr);
    expect(stderr).toMatch(/the disk is full/);
    expect(stderr).toContain(smallRoot);
  };

  it('load and pull of an image bigger than the disk say so and leave the store as it was', async () => {
    const before = storeSnapshot(smallRoot);
    for (const args of [
      ['load', '-i', bigTar],
      ['pull', bigPulled],
    ]) {
      const r = await bounded(c, args);
      expect(r.status).toBe(1);
      expectDiskFull(r.stderr);
      expect(storeSnapshot(smallRoot)).toEqual(before);
    }
    await expectNothingLeft(c);
  });

  it('commit of more than fits says so and leaves the store as it was', async () => {
    await must(c, [
      'run',
      '--name',
      'heavy',
      '--network',
      'none',
      'busybox',
      'sh',
      '-c',
      'head -c 12000000 /dev/urandom > /heavy',
    ]);
    const before = storeSnapshot(smallRoot);
    const commit = await bounded(c, ['commit', 'heavy', 'fault/heavy:1']);
    expect(commit.status).toBe(1);
    expectDiskFull(commit.stderr);
    expect(storeSnapshot(smallRoot)).toEqual(before);
    await must(c, ['rm', 'heavy']);
    await expectNothingLeft(c);
  });

  it('a container that fills the disk: its own exit code is recorded, other runs say the disk is full, rm frees it', async () => {
    const before = storeSnapshot(smallRoot);
    const fill = 'dd if=/dev/zero of=/fill bs=1M 2>/dev/null; echo full; exit 3';
    const filler = await bounded(c, [
      'run',
      '--name',
      'filler',
      '--network',
      'none',
      'busybox',
      'sh',
      '-c',
      fill,
    ]);
    expect(filler.status).toBe(3);
    expect(filler.out).toBe('full');
    expect((await psRows(c)).find((r) => r.name === 'filler')).toMatchObject({
      state: 'exited',
      exitCode: 3,
    });
    const other = await bounded(c, ['run', '--rm', 'busybox', 'echo', 'ok']);
    expect(other.status).toBe(125);
    expectDiskFull(other.stderr);
    await expectNothingLeft(c);
    await must(c, ['rm', 'filler']);
    expect((await must(c, ['run', '--rm', '--network', 'none', 'busybox', 'echo', 'ok'])).out).toBe('ok');
    expect(storeSnapshot(smallRoot)).toEqual(before);
    await expectNothingLeft(c);
  });
});

describe('races', () => {
  it('rmi -f against run: each ends with its own result or a clear error, nothing half made', async () => {
    const c = corral('race-rmi');
    for (let i = 0; i < N; i++) {
      await must(c, ['load', '-i', imgTar]);
      const [run, rmi] = await Promise.all([
        bounded(c, [
          'run',
          '--rm',
          '--network',
          'none',
          '--cgroup-parent',
          cgroupParent,
          IMG,
          'cat',
          '/many/f2',
        ]),
        new Promise((r) => setTimeout(r, moment(1500))).then(() => bounded(c, ['rmi', '-f', IMG])),
      ]);
      if (run.status === 0) expect(run.out).toBe('2');
      else expectClearError(run.stderr);
      if (rmi.status !== 0) expectClearError(rmi.stderr);
      await expectNothingLeft(c, cgroupParent);
    }
  });

  /** Three runs with one name at once: one runs, the others are refused and leave nothing. */
  async function sameName(c: Corral, extra: string[]) {
    const runs = await Promise.all(
      [0, 1, 2].map(() =>
        bounded(c, [
          'run',
          ...extra,
          '--name',
          'one',
          '--network',
          'none',
          '--cgroup-parent',
          cgroupParent,
          'busybox',
          'echo',
          'ran',
        ]),
      ),
    );
    expect(runs.filter((r) => r.status === 0)).toHaveLength(1);
    for (const r of runs.filter((r) => r.status !== 0)) {
      expect(r.status).toBe(125);
      expectClearError(r.stderr);
      expect(r.stderr).toMatch(/already in use/);
    }
    expect((await must(c, ['wait', 'one'])).out).toBe('0');
    expect((await psRows(c)).map((r) => r.name)).toEqual(['one']);
    await expectNothingLeft(c, cgroupParent);
  }

  it('parallel detached runs with one name: one runs, the others are refused, nothing else is made', async () => {
    await sameName(corral('race-name-d'), ['-d']);
  });

  // The keeper an attached run starts ahead (apps/cli/src/early.ts): a run refused for its
  // name once never exited (its parked init held the sync socket; KeeperClient.kill).
  it('parallel attached runs with one name: one runs, the others are refused, nothing else is made', async () => {
    await sameName(corral('race-name'), []);
  });

  it('parallel loads of one archive: all succeed, one copy is stored', async () => {
    const c = corral('race-load');
    const loads = await Promise.all([0, 1, 2].map(() => bounded(c, ['load', '-i', imgTar])));
    for (const l of loads) expect(l.status, l.stderr).toBe(0);
    expect((await c.images()).filter((i) => i.repoTags.includes(IMG))).toHaveLength(1);
    await expectNothingLeft(c);
  });
});
