import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { Sandbox } from './helpers.js';

const s = new Sandbox();
afterAll(() => s.teardown());

/** Our cgroups beneath the memory controller (where this process is placed on these hosts). */
function corralCgroups(): string[] {
  const mine = /^\d+:memory:(.*)$/m.exec(readFileSync('/proc/self/cgroup', 'utf8'))?.[1] ?? '/';
  try {
    return readdirSync(`/sys/fs/cgroup/memory${mine}`).filter((d) => d.startsWith('corral-'));
  } catch {
    return [];
  }
}

describe('limits through corral run', () => {
  it('OOM-kills a program that allocates past -m: exit 137, OOMKilled, others unharmed', async () => {
    const neighbour = (await s.corral(['run', '-d', '--name', 'neighbour', 'busybox', 'sleep', '100'])).out;
    const r = await s.corral([
      'run',
      '--name',
      'hog',
      '-m',
      '32m',
      'busybox',
      'sh',
      '-c',
      'x=$(head -c 100000000 /dev/zero | tr "\\0" a); echo survived',
    ]);
    expect(r.status).toBe(137);
    expect(r.stdout).not.toContain('survived');
    const state = JSON.parse((await s.corral(['inspect', 'hog'])).stdout)[0].state;
    expect(state.oomKilled).toBe(true);
    expect(state.exitCode).toBe(137);
    expect((await s.corral(['ps'])).out).toContain(neighbour.slice(0, 12));
    await s.corral(['rm', '-f', 'hog', 'neighbour']);
  });

  it('--pids-limit makes a fork loop fail inside while the host is fine', async () => {
    const loop = 'for i in $(seq 30); do sleep 1 & done; wait; echo all forked';
    const limited = await s.corral(['run', '--rm', '--pids-limit', '10', 'busybox', 'sh', '-c', loop]);
    expect(limited.stderr).toContain("can't fork");
    expect(limited.status).not.toBe(0);
    expect(limited.stdout).not.toContain('all forked');
    // The same loop without the limit, and the host itself, fork freely.
    expect((await s.corral(['run', '--rm', 'busybox', 'sh', '-c', loop])).out).toBe('all forked');
    expect(spawnSync('true').status).toBe(0);
  });

  it('--cpus 0.5 keeps a busy loop near half a core (a wide band)', async () => {
    await s.corral([
      'run',
      '-d',
      '--name',
      'spinner',
      '--cpus',
      '0.5',
      'busybox',
      'sh',
      '-c',
      'while :; do :; done',
    ]);
    try {
      const first = JSON.parse((await s.corral(['inspect', 'spinner'])).stdout)[0];
      expect(first.limitsInForce).toMatchObject({ cpuQuota: 50000, cpuPeriod: 100000 });
      const cpu = `/sys/fs/cgroup/cpuacct/${/^\d+:cpuacct:(.*)$/m.exec(readFileSync('/proc/self/cgroup', 'utf8'))![1].replace(/^\//, '')}`;
      const usage = () =>
        Number(readFileSync(`${cpu}/${first.cgroupPath}/cpuacct.usage`.replace('//', '/'), 'utf8'));
      // An unlimited busy loop beside it, on the host, shows what a loop can get right now: on a
      // machine busy with other work even an unlimited one gets less than half a core.
      const free = spawn('sh', ['-c', 'while :; do :; done'], { stdio: 'ignore' });
      const ticks = () => {
        const f = readFileSync(`/proc/${free.pid}/stat`, 'utf8').split(') ')[1].split(' ');
        return (Number(f[11]) + Number(f[12])) * 1e7; // utime + stime, 100 Hz ticks in ns
      };
      let share: number;
      let freeShare: number;
      try {
        const u0 = usage();
        const f0 = ticks();
        const t0 = process.hrtime.bigint();
        await new Promise((r) => setTimeout(r, 2000));
        const ns = Number(process.hrtime.bigint() - t0);
        share = (usage() - u0) / ns;
        freeShare = (ticks() - f0) / ns;
      } finally {
        free.kill('SIGKILL');
      }
      expect(share).toBeLessThan(0.75);
      expect(share).toBeGreaterThan(Math.min(0.25, freeShare * 0.3));
      // Where a loop can have most of a core, the limited one stays near half of one.
      if (freeShare > 0.8) expect(share).toBeLessThan(0.6);
      const json = (await s.corral(['stats', '--no-stream', '--format', 'json', 'spinner'])).out;
      const row = JSON.parse(json);
      expect(row.Name).toBe('spinner');
      expect(Number.parseFloat(row.CPUPerc)).toBeGreaterThan(0);
    } finally {
      await s.corral(['rm', '-f', 'spinner']);
    }
  });

  it('--cpuset-cpus 0 pins the container', async () => {
    const r = await s.corral([
      'run',
      '--rm',
      '--cpuset-cpus',
      '0',
      'busybox',
      'sh',
      '-c',
      'grep Cpus_allowed_list /proc/self/status',
    ]);
    expect(r.out).toMatch(/Cpus_allowed_list:\s+0$/);
  });

  it('shows usage in stats and the limits in inspect', async () => {
    await s.corral([
      'run',
      '-d',
      '--name',
      'limited',
      '-m',
      '64m',
      '--pids-limit',
      '50',
      '--cpu-shares',
      '512',
      'busybox',
      'sleep',
      '100',
    ]);
    const table = (await s.corral(['stats', '--no-stream'])).out.split('\n');
    expect(table[0]).toMatch(
      /^CONTAINER ID\s+NAME\s+CPU %\s+MEM USAGE \/ LIMIT\s+MEM %\s+BLOCK I\/O\s+PIDS$/,
    );
    expect(table.find((l) => l.includes('limited'))).toMatch(/ \/ 64MiB .* 1$/);
    const info = JSON.parse((await s.corral(['inspect', 'limited'])).stdout)[0];
    expect(info.limitsInForce).toMatchObject({ memory: 64 * 1024 * 1024, pidsLimit: 50, cpuShares: 512 });
    expect(info.hostConfig.resources).toMatchObject({
      memory: 64 * 1024 * 1024,
      pidsLimit: 50,
      cpuShares: 512,
    });
    await s.corral(['rm', '-f', 'limited']);
  });

  it('refuses limits the host cannot honour before anything starts', async () => {
    const cases: [string[], string][] = [
      [['-m', '1m'], 'Minimum memory limit allowed is 6MB'],
      [['--cpuset-cpus', '64'], 'Requested CPUs are not available'],
      [['--cpus', '1000'], 'Range of CPUs is from'],
      [['-m', 'lots'], 'invalid'],
      [['-m', '64m', '--memory-swap', '32m'], 'memory+swap limit'],
    ];
    for (const [flags, message] of cases) {
      const r = await s.corral(['run', '--rm', ...flags, 'busybox', 'true']);
      expect(r.status, flags.join(' ')).toBe(125);
      expect(r.stderr.toLowerCase()).toContain(message.toLowerCase());
    }
    expect((await s.corral(['ps', '-aq'])).out).toBe('');
  });

  it('leaves no cgroup behind once containers are removed', async () => {
    const id = (await s.corral(['run', '-d', '-m', '64m', 'busybox', 'sleep', '100'])).out;
    expect(corralCgroups()).toContain(`corral-${id}`);
    await s.corral(['rm', '-f', id]);
    // Only this container's cgroup is looked for: other suites make theirs meanwhile.
    expect(corralCgroups()).not.toContain(`corral-${id}`);
  });
});
