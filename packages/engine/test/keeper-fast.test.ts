// A fast keeper (keeper-fast.ts): it starts no Node init, and makes the container itself in a
// vfork child once the engine has written the bundle. The CLI's `run` uses one (its keeper
// spawned ahead); here the engine drives one directly, attached and detached, and through the
// init it starts after all for a container the fast path cannot make.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Cleanups, plantSelfExeAttack, unmountUnder, until } from '@corral/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { Engine } from '../src/engine.js';
import { KeeperClient } from '../src/keeper-client.js';
import { rootState, text } from './root-state.js';

const cleanups = new Cleanups();
const root = cleanups.tempDir('engine-keeper-fast');
cleanups.add(() => unmountUnder(root));
afterAll(() => cleanups.run());

const { mounts, containers, runtimeStates } = rootState(root);

/** A fast keeper, and whether it ever started a Node init. */
function fastKeeper(mode: 'attached' | 'detached', stdio?: ('pipe' | 'ignore')[]) {
  const keeper = new KeeperClient(mode, stdio, undefined, undefined, true);
  const seen = { init: false };
  keeper.init.then(
    () => (seen.init = true),
    () => {},
  );
  return { keeper, seen };
}

/** The host pids of the keeper's children (every thread's). */
function childrenOf(pid: number): number[] {
  return readdirSync(`/proc/${pid}/task`).flatMap((t) =>
    readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number),
  );
}

describe('a fast keeper', () => {
  it('runs an attached container as its only child, PID 1 of its namespace, with no Node init', async () => {
    const engine = await Engine.open({ root });
    const { keeper, seen } = fastKeeper('attached', ['ignore', 'pipe', 'pipe']);
    const h = await engine.run(
      {
        image: 'busybox',
        cmd: ['sh', '-c', 'echo out; echo err >&2; echo $$; read x < /proc/1/comm; echo $x; sleep 1; exit 3'],
        autoRemove: true,
        network: 'none',
      },
      { stdout: 'pipe', stderr: 'pipe' },
      { keeper },
    );
    const keeperPid = keeper.child.pid as number;
    const kids = childrenOf(keeperPid);
    expect(kids).toHaveLength(1);
    // The program itself: the keeper's only child, PID 1 inside, never a node.
    expect(readFileSync(`/proc/${kids[0]}/status`, 'utf8')).toMatch(
      new RegExp(`NSpid:\\s+${kids[0]}\\s+1\\n`),
    );
    expect(readFileSync(`/proc/${kids[0]}/comm`, 'utf8').trim()).not.toBe('node');
    const [out, err, code] = await Promise.all([text(h.stdout), text(h.stderr), h.wait()]);
    expect([out, err, code]).toEqual(['out\n1\nsh\n', 'err\n', 3]);
    expect(seen.init).toBe(false);
    await until(() => !existsSync(`/proc/${keeperPid}`), 'the keeper to end');
    expect(containers()).toEqual([]);
    expect(runtimeStates()).toEqual([]);
    expect(mounts()).toEqual([]);
  });

  it('runs a detached container: its output in the log, its exit code recorded by the keeper alone', async () => {
    const engine = await Engine.open({ root });
    const c = await engine.create({
      image: 'busybox',
      cmd: ['sh', '-c', 'echo one; echo two >&2; echo three; exit 5'],
      network: 'none',
    });
    const { keeper, seen } = fastKeeper('detached');
    await engine.start(c.id, { keeper });
    await until(() => engine.get(c.id).state.status === 'exited', 'the keeper to record the exit');
    expect(engine.get(c.id).state.exitCode).toBe(5);
    const lines: string[] = [];
    for await (const e of engine.logs(c.id)) lines.push(`${e.stream}:${e.log.trim()}`);
    expect(lines.filter((l) => l.startsWith('stdout:'))).toEqual(['stdout:one', 'stdout:three']);
    expect(lines.filter((l) => l.startsWith('stderr:'))).toEqual(['stderr:two']);
    expect(seen.init).toBe(false);
    await engine.remove(c.id);
    expect(mounts()).toEqual([]);
    expect(runtimeStates()).toEqual([]);
  });

  it('starts a Node init after all for a container its fast path cannot make (--init)', async () => {
    const engine = await Engine.open({ root });
    const { keeper, seen } = fastKeeper('attached', ['ignore', 'pipe', 'ignore']);
    const h = await engine.run(
      {
        image: 'busybox',
        cmd: ['sh', '-c', 'echo $$; exit 4'],
        init: true,
        autoRemove: true,
        network: 'none',
      },
      { stdout: 'pipe' },
      { keeper },
    );
    const [out, code] = await Promise.all([text(h.stdout), h.wait()]);
    // Under corral's init the program is not PID 1.
    expect(Number(out.trim())).toBeGreaterThan(1);
    expect(code).toBe(4);
    expect(seen.init).toBe(true);
    expect(containers()).toEqual([]);
  });

  it('fails a program that cannot be run with its code; nothing is left, the keeper ends', async () => {
    const engine = await Engine.open({ root });
    const { keeper } = fastKeeper('attached');
    await expect(
      engine.run(
        { image: 'busybox', cmd: ['/no/such/program'], autoRemove: true, network: 'none' },
        {},
        { keeper },
      ),
    ).rejects.toThrow(/no\/such\/program/);
    await until(
      () => keeper.child.exitCode !== null || keeper.child.signalCode !== null,
      'the keeper to end',
    );
    expect(containers()).toEqual([]);
    expect(runtimeStates()).toEqual([]);
    expect(mounts()).toEqual([]);
  });

  it('takes its program with it when it is SIGKILLed (the parent-death signal set before the program ran)', async () => {
    const engine = await Engine.open({ root });
    const c = await engine.create({ image: 'busybox', cmd: ['sleep', '60'], network: 'none' });
    const { keeper } = fastKeeper('detached');
    const started = await engine.start(c.id, { keeper });
    const pid = started.state.pid as number;
    expect(existsSync(`/proc/${pid}`)).toBe(true);
    keeper.child.kill('SIGKILL');
    await until(
      () => !existsSync(`/proc/${pid}`) || readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z '),
      'the program to die with its keeper',
    );
    await until(() => engine.get(c.id).state.status === 'exited', 'the next command to record the end');
    expect(engine.get(c.id).state.error).toMatch(/keeper/);
    await engine.remove(c.id, { force: true });
    expect(mounts()).toEqual([]);
  });
});

describe("the keeper's node is out of reach (CVE-2019-5736 class)", () => {
  // The vfork child shares the keeper's memory, so until it execs, /proc/self/exe is the
  // keeper's node: a container whose program is `#!/proc/self/exe`, or a link to it, would
  // run that node inside and write to it. The keeper runs here from a copy of node (the
  // canary), started by a front-end that runs from the same copy.
  it('neither a #!/proc/self/exe program nor a link to /proc/self/exe reaches it', () => {
    const dir = cleanups.tempDir('engine-keeper-exe');
    const node = join(dir, 'node');
    copyFileSync(process.execPath, node);
    const original = readFileSync(node).subarray(0, 4096);
    const rootfs = join(dir, 'rootfs');
    mkdirSync(rootfs);
    const attack = plantSelfExeAttack(rootfs);
    const dist = (f: string) => fileURLToPath(new URL(`../dist/${f}`, import.meta.url));
    const front = [
      `import { Engine } from ${JSON.stringify(dist('index.js'))};`,
      `import { KeeperClient } from ${JSON.stringify(dist('init-ahead.js'))};`,
      `const engine = await Engine.open({ root: ${JSON.stringify(join(dir, 'root'))} });`,
      'const codes = [];',
      `for (const cmd of ${JSON.stringify(attack.commands)}) {`,
      "  const keeper = new KeeperClient('attached', ['ignore', 'ignore', 'ignore'], undefined, undefined, true);",
      `  const h = await engine.run({ rootfs: ${JSON.stringify(rootfs)}, cmd, autoRemove: true, network: 'none' }, {}, { keeper });`,
      '  codes.push(await h.wait(), keeper.fast);',
      '}',
      'console.log(JSON.stringify(codes));',
    ].join('\n');
    writeFileSync(join(dir, 'front.mjs'), front);
    const r = spawnSync(node, [join(dir, 'front.mjs')], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    // The trampoline, entered a second time, exits 126 before anything of the payload runs.
    expect(JSON.parse(r.stdout)).toEqual([126, true, 126, true]);
    expect(attack.nodeRanInside()).toBe(false);
    expect(readFileSync(node).subarray(0, 4096).equals(original)).toBe(true);
  });
});
