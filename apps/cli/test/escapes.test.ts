// The escapes of the security review, run through the CLI as a user would start them, against
// a canary file on the host (the runtime's tests run each class in depth).
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Sandbox } from './helpers.js';

const s = new Sandbox();
const canaryDir = mkdtempSync(join(tmpdir(), 'corral-canary-'));
const canary = join(canaryDir, 'secret');
chmodSync(canaryDir, 0o755);
writeFileSync(canary, 'CANARY-CLI\n', { mode: 0o644 });
afterAll(async () => {
  await s.teardown();
  rmSync(canaryDir, { recursive: true, force: true });
});

describe('--init', () => {
  it("a user's program cannot read host files through PID 1's threads", async () => {
    const r = await s.corral([
      'run',
      '--rm',
      '--init',
      '-u',
      '1000',
      'busybox',
      'sh',
      '-c',
      `cat /proc/1/task/*/root${canary}; ls /proc/1/task | wc -l`,
    ]);
    expect(r.stdout).not.toContain('CANARY');
    expect(Number(r.out.split('\n').pop())).toBeGreaterThan(1);
  });

  it('nor can root with CAP_SYS_PTRACE', async () => {
    const r = await s.corral([
      'run',
      '--rm',
      '--init',
      '--cap-add',
      'SYS_PTRACE',
      'busybox',
      'sh',
      '-c',
      `cat /proc/1/task/*/root${canary}; for t in /proc/1/task/*; do readlink $t/root; done | sort -u`,
    ]);
    expect(r.stdout).not.toContain('CANARY');
    expect(r.out).toBe('/');
  });
});

describe('exec', () => {
  it('runs with the container no-new-privileges and seccomp filter', async () => {
    await s.corral([
      'run',
      '-d',
      '--name',
      'nnp',
      '--security-opt',
      'no-new-privileges',
      'busybox',
      'sleep',
      '100',
    ]);
    const r = await s.corral(['exec', 'nnp', 'grep', '-E', '^(NoNewPrivs|Seccomp):', '/proc/self/status']);
    expect(r.out).toMatch(/NoNewPrivs:\s+1/);
    expect(r.out).toMatch(/Seccomp:\s+2/);
    await s.corral(['rm', '-f', 'nnp']);
  });
});
