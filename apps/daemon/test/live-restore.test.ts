import { dirname } from 'node:path';
import { Cleanups, until } from '@corral/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { startDaemon } from './daemon.js';

// dockerd's live-restore: containers started detached run under the engine's watchers, not
// under corrald, so a SIGKILLed corrald loses neither them nor a line of their output.
const c = new Cleanups();
afterAll(() => c.run());

describe('corrald killed with SIGKILL', () => {
  it('leaves detached containers running; a new corrald reports them, their exits and every log line', async () => {
    const first = await startDaemon(c);
    const must = async (d: typeof first, args: string[]) => {
      const r = await d.docker(args);
      if (r.status !== 0) throw new Error(`docker ${args.join(' ')}: ${r.stderr}`);
      return r;
    };
    await must(first, [
      'run',
      '-d',
      '--name',
      'counter',
      '--network',
      'none',
      'busybox',
      'sh',
      '-c',
      'i=0; while true; do echo t$i; i=$((i+1)); sleep 0.1; done',
    ]);
    await must(first, [
      'run',
      '-d',
      '--name',
      'short',
      '--network',
      'none',
      'busybox',
      'sh',
      '-c',
      'sleep 1; exit 9',
    ]);
    await until(async () => (await first.docker(['logs', 'counter'])).stdout.includes('t3\n'), 'output');
    const exited = new Promise((r) => first.child.once('exit', r));
    first.child.kill('SIGKILL');
    await exited;
    await new Promise((r) => setTimeout(r, 1500)); // "short" ends while no daemon runs
    const second = await startDaemon(c, [], dirname(first.root));
    const ps = await must(second, ['ps', '-a', '--format', '{{.Names}} {{.State}}']);
    expect(ps.out.split('\n').sort()).toEqual(['counter running', 'short exited']);
    expect((await must(second, ['inspect', '-f', '{{.State.ExitCode}}', 'short'])).out).toBe('9');
    const lines = (await must(second, ['logs', 'counter'])).stdout.trim().split('\n');
    expect(lines.length).toBeGreaterThan(10);
    expect(lines).toEqual(lines.map((_, i) => `t${i}`)); // none lost across the kill
    await must(second, ['rm', '-f', 'counter', 'short']);
  });
});
