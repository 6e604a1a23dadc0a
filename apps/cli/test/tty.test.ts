import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { onTerminal, Sandbox, until } from './helpers.js';

const s = new Sandbox();
afterAll(() => s.teardown());
const bin = fileURLToPath(new URL('../bin/corral.cjs', import.meta.url));

describe('terminals (-t)', () => {
  it('gives the program a terminal of the container', async () => {
    const r = await onTerminal(
      ['--root', s.root],
      ['run', '--rm', '-t', 'busybox', 'sh', '-c', 'tty; echo TERM=$TERM'],
    );
    expect(r.status).toBe(0);
    expect(r.out).toContain('/dev/pts/0');
    expect(r.out).toContain('TERM=xterm');
  });

  it('runs an interactive shell with -it and returns its exit code', async () => {
    const r = await onTerminal(
      ['--root', s.root],
      ['run', '--rm', '-it', 'busybox', 'sh'],
      'echo answer=$((6*7))\nexit 5\n',
    );
    expect(r.out).toContain('answer=42');
    expect(r.status).toBe(5);
  });

  it('keeps the terminal output of a detached -t container in its log', async () => {
    await s.corral(['run', '-d', '-t', '--name', 'ttylog', 'busybox', 'sh', '-c', 'tty; echo from-tty']);
    await until(async () => (await s.corral(['logs', 'ttylog'])).stdout.includes('from-tty'), 'the log');
    expect((await s.corral(['logs', 'ttylog'])).stdout).toContain('/dev/pts/0');
    await s.corral(['rm', '-f', 'ttylog']);
  });
});

describe('exec -t', () => {
  it('gives an exec its own terminal inside the container', async () => {
    await s.corral(['run', '-d', '--name', 'ttyexec', 'busybox', 'sleep', '100']);
    const r = await onTerminal(['--root', s.root], ['exec', '-it', 'ttyexec', 'sh', '-c', 'tty; exit 3']);
    expect(r.out).toContain('/dev/pts/');
    expect(r.status).toBe(3);
    await s.corral(['rm', '-f', 'ttyexec']);
  });
});

describe('file descriptors', () => {
  it('passes only stdin, stdout and stderr to the program', async () => {
    // The CLI gets an extra open fd (7) from its caller: the container must not see it.
    const out = await new Promise<string>((resolve) => {
      const child = spawn(
        process.execPath,
        [bin, '--root', s.root, 'run', '--rm', 'busybox', 'sh', '-c', 'ls /proc/$$/fd; true'],
        {
          stdio: ['ignore', 'pipe', 'inherit', 'ignore', 'ignore', 'ignore', 'ignore', 'pipe'],
        },
      );
      let text = '';
      child.stdout!.on('data', (d) => (text += d));
      child.on('close', () => resolve(text));
    });
    expect(out.trim().split('\n').sort()).toEqual(['0', '1', '2']);
  });
});
