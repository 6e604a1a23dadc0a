import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Cleanups, unmountUnder, until } from '@corral/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { Engine } from '../src/engine.js';
import type { LaunchStep } from '../src/lifecycle.js';
import { rootState, text } from './root-state.js';

const cleanups = new Cleanups();
const root = cleanups.tempDir('engine');
cleanups.add(() => unmountUnder(root));
// A network keeps its bridge while it exists: the default network's bridge and rules go here.
cleanups.add(async () => {
  if (existsSync(join(root, 'network', 'networks'))) await (await Engine.open({ root })).networks.down();
});
afterAll(() => cleanups.run());

const { mounts, containers, runtimeStates } = rootState(root);

describe('the engine without a CLI', () => {
  it("runs a container and streams its output through the handle's pipes", async () => {
    const engine = await Engine.open({ root });
    const h = await engine.run(
      { image: 'busybox', cmd: ['sh', '-c', 'echo out; echo err >&2; exit 3'], autoRemove: true },
      { stdout: 'pipe', stderr: 'pipe' },
    );
    const [out, err, code] = await Promise.all([text(h.stdout), text(h.stderr), h.wait()]);
    expect([out, err, code]).toEqual(['out\n', 'err\n', 3]);
    expect(containers()).toEqual([]);
    expect(mounts()).toEqual([]);
  });

  it('feeds stdin and passes a signal on to the program', async () => {
    const engine = await Engine.open({ root });
    const h = await engine.run(
      {
        image: 'busybox',
        cmd: ['sh', '-c', 'read line; echo "got $line"; trap "exit 9" TERM; sleep 30 & wait'],
        autoRemove: true,
      },
      { stdin: 'pipe', stdout: 'pipe' },
    );
    h.stdin?.end('hello\n');
    let out = '';
    for await (const c of h.stdout ?? []) {
      out += c.toString();
      if (out.includes('\n')) break;
    }
    expect(out).toBe('got hello\n');
    await new Promise((r) => setTimeout(r, 200)); // the trap is set after the echo
    h.signal('SIGTERM');
    expect(await h.wait()).toBe(9);
  });

  it('gives an exec a handle, and a terminal as a pty', async () => {
    const engine = await Engine.open({ root });
    const c = await engine.create({ image: 'busybox', cmd: ['sleep', '60'], name: 'execd' });
    await engine.start(c.id);
    try {
      const piped = await engine.exec('execd', { cmd: ['sh', '-c', 'echo $((6*7))'] }, { stdout: 'pipe' });
      const [out, code] = await Promise.all([text(piped.stdout), piped.wait()]);
      expect([out, code]).toEqual(['42\n', 0]);
      const tty = await engine.exec(
        'execd',
        { cmd: ['stty', 'size'], tty: true },
        { consoleSize: { cols: 91, rows: 17 } },
      );
      expect(tty.pty).not.toBeNull();
      const [shown, ttyCode] = await Promise.all([text(tty.pty!.output), tty.wait()]);
      expect([shown.trim(), ttyCode]).toEqual(['17 91', 0]);
      const missing = engine.exec('execd', { cmd: ['no-such-program'] }, {});
      await expect(missing).rejects.toMatchObject({ kind: 'CommandNotFound' });
    } finally {
      await engine.remove('execd', { force: true });
    }
  });

  // An attached run interrupted at each of its steps leaves nothing: no record, mount or
  // runtime state. Its keeper makes the container and runs the program in one step (its fast
  // path): from "created" on the program runs, the abort is the caller's to pass on, and the
  // run resolves. Through a Node init (CORRAL_RUNTIME_FAST=0) the program runs from "started".
  for (const fast of [true, false]) {
    for (const step of ['record', 'mounted', 'bundle', 'created', 'started'] as const) {
      it(`cleans up a run interrupted after the step "${step}"${fast ? '' : ' (through a Node init)'}`, async () => {
        const engine = await Engine.open({ root });
        const abort = new AbortController();
        if (!fast) process.env.CORRAL_RUNTIME_FAST = '0';
        try {
          const run = engine.run(
            { image: 'busybox', cmd: ['sleep', '60'], autoRemove: true },
            {},
            {
              abort: abort.signal,
              onStep: (s: 'record' | LaunchStep) => s === step && abort.abort('SIGTERM'),
            },
          );
          if (fast && (step === 'created' || step === 'started')) {
            const h = await run;
            h.signal('SIGKILL');
            expect(await h.wait()).toBe(137);
            await until(() => containers().length === 0, 'the --rm container to be removed');
          } else await expect(run).rejects.toMatchObject({ kind: 'Unavailable' });
        } finally {
          delete process.env.CORRAL_RUNTIME_FAST;
        }
        expect(containers()).toEqual([]);
        expect(mounts()).toEqual([]);
        expect(runtimeStates()).toEqual([]);
      });
    }
  }

  it('reclaims at the next start what a SIGKILLed --rm run left', async () => {
    // A process stands for the run: it owns the container, then dies without cleaning up.
    const owner = spawn('sleep', ['60'], { stdio: 'ignore' });
    const engine = await Engine.open({ root });
    const r = await engine.create({ image: 'busybox', cmd: ['true'], autoRemove: true, owner: owner.pid });
    const kept = await engine.create({ image: 'busybox', cmd: ['true'], autoRemove: true });
    expect((await Engine.open({ root })).get(r.id).id).toBe(r.id); // its owner lives: left alone
    owner.kill('SIGKILL');
    await new Promise((res) => owner.on('exit', res));
    await Engine.open({ root });
    expect(containers()).toEqual([kept.id]); // a `create --rm` without an owner is not touched
    await engine.remove(kept.id);
  });
});
