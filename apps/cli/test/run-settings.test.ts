// The flags of `run` beyond the program and its cgroup limits, each checked from inside a real
// container: --ulimit, --env-file, --label(-file) with ps --filter, --group-add, --device,
// --shm-size, --sysctl, --oom-score-adj, --oom-kill-disable, --log-opt, --cidfile,
// --sig-proxy, -a, health checks; bad input fails naming the flag with nothing created.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { corralBin, runCorral } from '@corral/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { Sandbox, until } from './helpers.js';

// Many real containers per test on a shared, loaded machine: a longer timeout than the default.
const s = new Sandbox();
afterAll(() => s.teardown());

const containers = () =>
  existsSync(join(s.root, 'containers')) ? readdirSync(join(s.root, 'containers')) : [];

/** Runs `corral create ARGS` (`run --rm` with `run`) and expects a refusal naming `flag`, with no container left. */
async function refused(args: string[], flag: string, command: 'create' | 'run' = 'create'): Promise<string> {
  const before = containers().length;
  const r = await s.corral(command === 'run' ? ['run', '--rm', ...args] : ['create', ...args]);
  expect(r.status).toBe(125);
  expect(r.stderr).toContain(flag);
  expect(containers().length).toBe(before);
  return r.stderr;
}

describe('--ulimit', { timeout: 180_000 }, () => {
  it('sets soft and hard limits the program sees (ulimit -a), -1 for unlimited', async () => {
    const r = await s.corral([
      'run',
      '--rm',
      '--ulimit',
      'nofile=1000:2000',
      '--ulimit',
      'core=-1',
      '--ulimit',
      'nproc=500',
      'busybox',
      'sh',
      '-c',
      'ulimit -n; ulimit -Hn; ulimit -c; ulimit -u; ulimit -a',
    ]);
    expect(r.status).toBe(0);
    const [soft, hard, core, nproc, ...all] = r.out.split('\n');
    expect([soft, hard, core, nproc]).toEqual(['1000', '2000', 'unlimited', '500']);
    expect(all.join('\n')).toMatch(/open files\s+\(-n\)\s+1000/);
    // An exec has them too: the hard limit is not escaped through exec.
    const id = (await s.corral(['run', '-d', '--ulimit', 'nofile=1000:2000', 'busybox', 'sleep', '30'])).out;
    expect((await s.corral(['exec', id, 'sh', '-c', 'ulimit -n; ulimit -Hn'])).out).toBe('1000\n2000');
    await s.corral(['rm', '-f', id]);
  });

  it("refuses an unknown name, soft above hard, and a hard limit above corral's own", async () => {
    expect(await refused(['--ulimit', 'nofiles=10', 'busybox', 'true'], '--ulimit nofiles')).toContain(
      'unknown ulimit type',
    );
    await refused(['--ulimit', 'nofile=20:10', 'busybox', 'true'], '--ulimit nofile');
    const ownHard = Number(
      /^Max open files\s+\S+\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1],
    );
    const msg = await refused(
      ['--ulimit', `nofile=${ownHard + 1}:${ownHard + 1}`, 'busybox', 'true'],
      '--ulimit nofile',
    );
    expect(msg).toContain('CAP_SYS_RESOURCE');
  });
});

describe('--env-file', { timeout: 180_000 }, () => {
  it("reads K=V lines (comments and blanks skipped, a bare name from the caller's environment), -e wins", async () => {
    const file = join(s.root, 'app.env');
    writeFileSync(file, 'A=1\n# comment\n\n  B=two words\nFROM_CALLER\nUNSET_HERE\nQ="kept"\n');
    const env = { ...process.env, FROM_CALLER: 'from corral' };
    delete env.UNSET_HERE;
    const r = await runCorral(
      s.root,
      [
        'run',
        '--rm',
        '--env-file',
        file,
        '-e',
        'A=over',
        'busybox',
        'sh',
        '-c',
        // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell's ${VAR-default}, not JavaScript's
        'echo "$A|$B|$FROM_CALLER|${UNSET_HERE-unset}|$Q"',
      ],
      { env },
    );
    expect(r.out).toBe('over|two words|from corral|unset|"kept"');
  });

  it('refuses a missing file and a name with spaces, naming the flag', async () => {
    await refused(['--env-file', join(s.root, 'none.env'), 'busybox', 'true'], '--env-file');
    const bad = join(s.root, 'bad.env');
    writeFileSync(bad, 'MY VAR=1\n');
    expect(await refused(['--env-file', bad, 'busybox', 'true'], '--env-file')).toContain('whitespaces');
  });
});

describe('--label, --label-file, ps --filter label=', { timeout: 180_000 }, () => {
  it('labels a container; ps filters by key and by key=value; inspect shows them', async () => {
    const file = join(s.root, 'labels');
    writeFileSync(file, 'team=blue\nbare\n');
    await s.corral([
      'create',
      '--name',
      'lab-web',
      '--label-file',
      file,
      '-l',
      'tier=web',
      'busybox',
      'true',
    ]);
    await s.corral(['create', '--name', 'lab-db', '--label', 'tier=db', 'busybox', 'true']);
    const names = async (...f: string[]) =>
      (await s.corral(['ps', '-a', '--format', 'json', ...f.flatMap((x) => ['--filter', x])])).out
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l).name)
        .sort();
    expect(await names('label=tier')).toEqual(['lab-db', 'lab-web']);
    expect(await names('label=tier=web')).toEqual(['lab-web']);
    expect(await names('label=tier', 'label=bare')).toEqual(['lab-web']);
    expect(await names('label=tier=none')).toEqual([]);
    const labels = JSON.parse((await s.corral(['inspect', 'lab-web'])).stdout)[0].config.labels;
    expect(labels).toEqual({ team: 'blue', bare: '', tier: 'web' });
    await s.corral(['rm', 'lab-web', 'lab-db']);
  });
});

describe('--group-add, --shm-size, --oom-score-adj', { timeout: 180_000 }, () => {
  it('adds groups by name and id to the program', async () => {
    const r = await s.corral([
      'run',
      '--rm',
      '-u',
      'nobody',
      '--group-add',
      'mail',
      '--group-add',
      '4242',
      'busybox',
      'id',
    ]);
    expect(r.out).toMatch(/groups=.*8\(mail\)/);
    expect(r.out).toContain('4242');
    // An exec gets them too (Docker's rule).
    const id = (
      await s.corral(['run', '-d', '-u', 'nobody', '--group-add', '4242', 'busybox', 'sleep', '30'])
    ).out;
    expect((await s.corral(['exec', id, 'id', '-G'])).out.split(' ')).toContain('4242');
    await s.corral(['rm', '-f', id]);
    // Looked up in the container's /etc/group at start.
    await refused(['--group-add', 'no-such-group', 'busybox', 'true'], '--group-add no-such-group', 'run');
  });

  it('sizes /dev/shm', async () => {
    const r = await s.corral(['run', '--rm', '--shm-size', '128m', 'busybox', 'df', '-k', '/dev/shm']);
    expect(r.out.split('\n')[1]).toMatch(/^shm\s+131072\s/);
  });

  it("sets oom_score_adj; a value below corral's own is refused (no CAP_SYS_RESOURCE here)", async () => {
    expect(
      (
        await s.corral([
          'run',
          '--rm',
          '--oom-score-adj',
          '500',
          'busybox',
          'cat',
          '/proc/self/oom_score_adj',
        ])
      ).out,
    ).toBe('500');
    const own = Number(readFileSync('/proc/self/oom_score_adj', 'utf8'));
    await refused(['--oom-score-adj', String(own - 1), 'busybox', 'true'], '--oom-score-adj');
    await refused(['--oom-score-adj', '1001', 'busybox', 'true'], '--oom-score-adj');
  });
});

describe('--device', { timeout: 180_000 }, () => {
  it('makes the node inside the root with its cgroup rule: rw opens, :r refuses a write open, no rule no open', async () => {
    const rw = await s.corral([
      'run',
      '--rm',
      '--device',
      '/dev/fuse:/dev/xfuse',
      'busybox',
      'sh',
      '-c',
      'ls -l /dev/xfuse; exec 3<>/dev/xfuse && echo opened',
    ]);
    expect(rw.out).toMatch(/^c\S+\s+1 root\s+root\s+10,\s+229 .* \/dev\/xfuse\nopened$/);
    const ro = await s.corral([
      'run',
      '--rm',
      '--device',
      '/dev/fuse:/dev/xfuse:r',
      'busybox',
      'sh',
      '-c',
      'exec 3</dev/xfuse && echo read-ok; exec 4<>/dev/xfuse && echo rw-ok',
    ]);
    expect(ro.out).toBe('read-ok');
    expect(ro.stderr).toContain('Operation not permitted');
    // Without --device the same node made inside (mknod is allowed) cannot be opened.
    const none = await s.corral([
      'run',
      '--rm',
      'busybox',
      'sh',
      '-c',
      'mknod /dev/f c 10 229 && exec 3<>/dev/f && echo opened',
    ]);
    expect(none.out).not.toContain('opened');
  });

  it("makes the node inside the root when the image's path is a symlink to a host folder (canary)", async () => {
    const canary = join(s.root, 'canary-dev');
    mkdirSync(canary);
    writeFileSync(join(canary, 'keep'), 'canary');
    await s.corral([
      'run',
      '--name',
      'evil-maker',
      'busybox',
      'sh',
      '-c',
      `ln -s ${canary} /evil && ln -s ../../../../../../.. /up`,
    ]);
    await s.corral(['commit', 'evil-maker', 'evil-dev:1']);
    await s.corral(['rm', 'evil-maker']);
    const r = await s.corral([
      'run',
      '--rm',
      '--device',
      '/dev/null:/evil/null',
      '--device',
      '/dev/zero:/up/zero',
      'evil-dev:1',
      'sh',
      '-c',
      `ls ${canary}; echo x > /evil/null && head -c 3 /up/zero | wc -c`,
    ]);
    expect(r.status).toBe(0);
    // Inside, the nodes are where the links lead within the root; the host folder is untouched.
    expect(r.out).toBe('null\n3');
    expect(readdirSync(canary)).toEqual(['keep']);
    expect(existsSync('/zero')).toBe(false);
    await s.corral(['rmi', 'evil-dev:1']);
  });

  it('refuses a missing device, a file, and a relative path', async () => {
    await refused(['--device', '/dev/no-such-device', 'busybox', 'true'], '--device /dev/no-such-device');
    await refused(['--device', '/etc/hostname', 'busybox', 'true'], '--device /etc/hostname');
    await refused(['--device', 'dev/null', 'busybox', 'true'], '--device dev/null');
  });
});

describe('--sysctl', { timeout: 180_000 }, () => {
  it('sets namespaced sysctls inside, leaving the host as it was', async () => {
    const hostShm = readFileSync('/proc/sys/kernel/shmmax', 'utf8').trim();
    const hostFwd = readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim();
    const r = await s.corral([
      'run',
      '--rm',
      '--sysctl',
      'kernel.shmmax=123456',
      '--sysctl',
      'net.ipv4.ip_forward=1',
      'busybox',
      'cat',
      '/proc/sys/kernel/shmmax',
      '/proc/sys/net/ipv4/ip_forward',
    ]);
    expect(r.out).toBe('123456\n1');
    expect(readFileSync('/proc/sys/kernel/shmmax', 'utf8').trim()).toBe(hostShm);
    expect(readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim()).toBe(hostFwd);
  });

  it('refuses a sysctl no namespace of the container isolates, and net.* in the host network', async () => {
    expect(
      await refused(['--sysctl', 'kernel.pid_max=100000', 'busybox', 'true'], '--sysctl kernel.pid_max'),
    ).toContain('namespaced');
    await refused(['--sysctl', 'vm.swappiness=1', 'busybox', 'true'], '--sysctl vm.swappiness');
    await refused(
      ['--network', 'host', '--sysctl', 'net.ipv4.ip_forward=1', 'busybox', 'true'],
      '--sysctl net.ipv4.ip_forward',
    );
  });
});

describe('--oom-kill-disable', { timeout: 180_000 }, () => {
  it('a program past -m waits for memory instead of being killed', async () => {
    const id = (
      await s.corral([
        'run',
        '-d',
        '-m',
        '8m',
        '--memory-swap',
        '8m',
        '--oom-kill-disable',
        'busybox',
        'sh',
        '-c',
        'x=$(head -c 64000000 /dev/zero | tr "\\0" a); echo survived',
      ])
    ).out;
    const path = JSON.parse((await s.corral(['inspect', id])).stdout)[0].cgroupPath;
    const mine = /^\d+:memory:(.*)$/m.exec(readFileSync('/proc/self/cgroup', 'utf8'))?.[1] ?? '/';
    const control = join('/sys/fs/cgroup/memory', mine, path, 'memory.oom_control');
    await until(() => /under_oom 1/.test(readFileSync(control, 'utf8')), 'the container to be under OOM');
    expect(readFileSync(control, 'utf8')).toMatch(/oom_kill_disable 1/);
    expect(readFileSync(control, 'utf8')).toMatch(/oom_kill 0/);
    const state = JSON.parse((await s.corral(['inspect', id])).stdout)[0].state;
    expect(state.status).toBe('running');
    await s.corral(['rm', '-f', id]);
  });
});

describe('--log-opt max-size, max-file', { timeout: 180_000 }, () => {
  it('rotates the json-file log, keeping max-file files; logs reads them in order', async () => {
    const id = (
      await s.corral([
        'run',
        '-d',
        '--log-opt',
        'max-size=1k',
        '--log-opt',
        'max-file=3',
        'busybox',
        'sh',
        '-c',
        'i=0; while [ $i -lt 200 ]; do echo line-$i; i=$((i+1)); done',
      ])
    ).out;
    await s.corral(['wait', id]);
    const log = join(s.root, 'containers', id, `${id}-json.log`);
    expect(existsSync(`${log}.1`) && existsSync(`${log}.2`)).toBe(true);
    expect(existsSync(`${log}.3`)).toBe(false);
    for (const f of [log, `${log}.1`, `${log}.2`]) expect(readFileSync(f).length).toBeLessThanOrEqual(1024);
    const lines = (await s.corral(['logs', id])).out.split('\n');
    expect(lines.at(-1)).toBe('line-199');
    expect(lines[0]).not.toBe('line-0');
    const n = lines.map((l) => Number(l.slice(5)));
    expect(n).toEqual(n.map((_, i) => n[0] + i)); // in order, none missing
    await s.corral(['rm', id]);
  });

  it('refuses an unknown option and a bad size', async () => {
    await refused(['--log-opt', 'compress=true', 'busybox', 'true'], '--log-opt compress');
    await refused(['--log-opt', 'max-size=lots', 'busybox', 'true'], '--log-opt max-size');
  });
});

describe('--cidfile, -a, --sig-proxy', { timeout: 180_000 }, () => {
  it('writes the id; an existing file is refused with nothing created', async () => {
    const file = join(s.root, 'cid');
    const id = (await s.corral(['run', '-d', '--cidfile', file, 'busybox', 'true'])).out;
    expect(readFileSync(file, 'utf8')).toBe(id);
    await refused(['--cidfile', file, 'busybox', 'true'], '--cidfile');
    await s.corral(['rm', '-f', id]);
  });

  it('-a attaches only the streams named', async () => {
    const cmd = ['busybox', 'sh', '-c', 'echo out; echo err >&2'];
    const out = await s.corral(['run', '--rm', '-a', 'stdout', ...cmd]);
    expect([out.stdout, out.stderr]).toEqual(['out\n', '']);
    const err = await s.corral(['run', '--rm', '-a', 'STDERR', ...cmd]);
    expect([err.stdout, err.stderr]).toEqual(['', 'err\n']);
    expect((await s.corral(['run', '-d', '-a', 'stdout', ...cmd])).status).toBe(125);
  });

  /** An attached run sent SIGTERM once its program is ready; its output and exit code. */
  async function signalled(extra: string[]): Promise<{ out: string; code: number | null }> {
    const child = spawn(
      process.execPath,
      [
        '--',
        corralBin,
        '--root',
        s.root,
        'run',
        '--rm',
        ...extra,
        'busybox',
        'sh',
        '-c',
        'trap "echo got TERM; exit 3" TERM; echo ready; i=0; while [ $i -lt 20 ]; do sleep 0.1; i=$((i+1)); done; echo done',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      if (out === 'ready\n') child.kill('SIGTERM');
    });
    const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
    return { out, code };
  }

  it('--sig-proxy (the default) passes signals to the program; --sig-proxy=false does not', async () => {
    expect(await signalled([])).toEqual({ out: 'ready\ngot TERM\n', code: 3 });
    expect(await signalled(['--sig-proxy=false'])).toEqual({ out: 'ready\ndone\n', code: 0 });
  });
});

describe('health checks', { timeout: 180_000 }, () => {
  it('turns unhealthy after the retries, healthy once the check passes; ps and inspect show it', async () => {
    const id = (
      await s.corral([
        'run',
        '-d',
        '--health-cmd',
        'test -e /tmp/ok',
        '--health-interval',
        '200ms',
        '--health-retries',
        '2',
        'busybox',
        'sleep',
        '60',
      ])
    ).out;
    const health = async () => JSON.parse((await s.corral(['inspect', id])).stdout)[0].state.health;
    await until(async () => (await health())?.Status === 'unhealthy', 'unhealthy');
    expect((await s.corral(['ps'])).out).toMatch(/Up .* \(unhealthy\)/);
    const h = await health();
    expect(h.FailingStreak).toBeGreaterThanOrEqual(2);
    expect(h.Log.at(-1).ExitCode).toBe(1);
    await s.corral(['exec', id, 'touch', '/tmp/ok']);
    await until(async () => (await health())?.Status === 'healthy', 'healthy');
    expect((await s.corral(['ps'])).out).toMatch(/Up .* \(healthy\)/);
    expect((await health()).FailingStreak).toBe(0);
    await s.corral(['rm', '-f', id]);
  });

  it('failures in the start period do not count', async () => {
    const id = (
      await s.corral([
        'run',
        '-d',
        '--health-cmd',
        'false',
        '--health-interval',
        '100ms',
        '--health-retries',
        '1',
        '--health-start-period',
        '60s',
        'busybox',
        'sleep',
        '60',
      ])
    ).out;
    const health = async () => JSON.parse((await s.corral(['inspect', id])).stdout)[0].state.health;
    await until(async () => (await health())?.Log.length >= 2, 'two failed checks');
    const h = await health();
    expect(h.Log.every((l: { ExitCode: number }) => l.ExitCode === 1)).toBe(true);
    expect([h.Status, h.FailingStreak]).toEqual(['starting', 0]);
    await s.corral(['rm', '-f', id]);
  });

  it('a check past its timeout fails; --no-healthcheck leaves none; bad durations are refused', async () => {
    const id = (
      await s.corral([
        'run',
        '-d',
        '--health-cmd',
        'sleep 5',
        '--health-interval',
        '100ms',
        '--health-timeout',
        '200ms',
        '--health-retries',
        '1',
        'busybox',
        'sleep',
        '60',
      ])
    ).out;
    const health = async () => JSON.parse((await s.corral(['inspect', id])).stdout)[0].state.health;
    await until(async () => (await health())?.Status === 'unhealthy', 'unhealthy by timeout');
    expect((await health()).Log[0].Output).toContain('exceeded timeout');
    await s.corral(['rm', '-f', id]);
    const none = (await s.corral(['create', '--no-healthcheck', 'busybox', 'true'])).out;
    expect(JSON.parse((await s.corral(['inspect', none])).stdout)[0].config.healthcheck).toBeUndefined();
    await s.corral(['rm', none]);
    await refused(
      ['--health-cmd', 'true', '--health-interval', 'soon', 'busybox', 'true'],
      '--health-interval',
    );
  });
});
