// corral-runtime's command line, as podman's conmon and containerd's shim call it: one process
// per command, the container living on after create exits.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OciSpec } from '../dist/index.js';
import { BIN, corralRuntime, until } from './cli-helpers.js';
import { bundleMaker, busyboxRootfs, tempDir } from './helpers.js';

const tmp = tempDir('cli');
const rootfs = join(tmp, 'rootfs');
const root = join(tmp, 'state');
const bundle = bundleMaker(tmp, rootfs);
const cr = corralRuntime(tmp, root);

beforeAll(() => {
  busyboxRootfs(rootfs);
});
afterAll(() => {
  for (const id of JSON.parse(cr(['list', '--format', 'json']).stdout) ?? [])
    cr(['delete', '--force', id.id]);
  rmSync(tmp, { recursive: true, force: true });
});

const alive = (pid: number) =>
  existsSync(`/proc/${pid}`) && !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z');

describe('corral-runtime lifecycle', () => {
  it('create exits and leaves the init parked; start, state, kill and delete work from other processes', async () => {
    const b = bundle(['sh', '-c', 'echo started; exec sleep 100']);
    const pidFile = join(tmp, 'life.pid');
    const r = cr(['create', '--bundle', b, '--pid-file', pidFile, 'life']);
    expect(r).toMatchObject({ status: 0, stderr: '' });
    const pid = Number(readFileSync(pidFile, 'utf8'));
    expect(alive(pid)).toBe(true);
    const state = JSON.parse(cr(['state', 'life']).stdout);
    expect(state).toEqual({
      ociVersion: '1.2.0',
      id: 'life',
      pid,
      status: 'created',
      bundle: b,
      rootfs,
      created: expect.any(String),
      owner: '',
    });
    expect(cr(['start', 'life']).status).toBe(0);
    expect(JSON.parse(cr(['state', 'life']).stdout).status).toBe('running');
    const list = JSON.parse(cr(['list', '--format', 'json']).stdout);
    expect(list).toContainEqual(
      expect.objectContaining({ id: 'life', pid, status: 'running', owner: 'root' }),
    );
    expect(cr(['list']).stdout).toMatch(/^ID {10}PID {9}STATUS {6}BUNDLE/);
    expect(cr(['delete', 'life'])).toMatchObject({ status: 1, stderr: expect.stringContaining('running') });
    expect(cr(['kill', 'life', 'KILL']).status).toBe(0);
    await until(() => !alive(pid), 10_000, 'the container to die');
    expect(JSON.parse(cr(['state', 'life']).stdout)).toMatchObject({ status: 'stopped', pid: 0 });
    expect(cr(['delete', 'life']).status).toBe(0);
    expect(cr(['state', 'life'])).toMatchObject({
      status: 1,
      stderr: expect.stringContaining('container life does not exist'),
    });
    expect(cr(['delete', '--force', 'life']).status).toBe(0);
  });

  it('starts by its #! line and under sh (as a pnpm shim runs it), Node without NODE_EXTRA_CA_CERTS', () => {
    // Node warns at start-up when that file cannot be read: a start that reads it is heard.
    const env = { ...process.env, NODE_EXTRA_CA_CERTS: join(tmp, 'no-such-ca.pem') };
    for (const argv of [[BIN], ['sh', BIN]]) {
      const r = spawnSync(argv[0], [...argv.slice(1), '--version'], { env, encoding: 'utf8' });
      expect([r.status, r.stderr]).toEqual([0, '']);
      expect(r.stdout).toContain('corral-runtime version');
    }
  });

  it('run waits and exits with the status of the program; its stdio is the caller’s', () => {
    const r = cr(['run', '--bundle', bundle(['sh', '-c', 'echo out; echo err >&2; exit 3']), 'ran']);
    expect(r).toEqual({ status: 3, stdout: 'out\n', stderr: 'err\n' });
    expect(existsSync(join(root, 'ran'))).toBe(false);
  });

  it('run -d leaves the container running; delete removes a created one without --force', async () => {
    expect(cr(['run', '-d', '--bundle', bundle(['sleep', '100']), 'bg']).status).toBe(0);
    expect(JSON.parse(cr(['state', 'bg']).stdout).status).toBe('running');
    expect(cr(['delete', '-f', 'bg']).status).toBe(0);
    expect(cr(['create', '--bundle', bundle(['true']), 'made']).status).toBe(0);
    const { pid } = JSON.parse(cr(['state', 'made']).stdout);
    expect(cr(['delete', 'made']).status).toBe(0);
    await until(() => !alive(pid), 10_000, 'the parked init to die');
  });

  it('kill takes a signal by name, with or without SIG, or by number; --all signals every process', async () => {
    const b = bundle([
      'sh',
      '-c',
      'trap "echo got-usr1" USR1; trap "echo got-term; exit 7" TERM; while :; do sleep 0.1; done',
    ]);
    const out = join(tmp, 'kill.out');
    const child = spawn(process.execPath, [BIN, '--root', root, 'run', '--bundle', b, 'sig'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let text = '';
    child.stdout.on('data', (d) => (text += d));
    await until(
      () =>
        existsSync(join(root, 'sig', 'state.json')) &&
        JSON.parse(cr(['state', 'sig']).stdout).status === 'running',
    );
    expect(cr(['kill', 'sig', 'USR1']).status).toBe(0);
    await until(() => text.includes('got-usr1'));
    expect(cr(['kill', 'sig', 'BOGUS'])).toMatchObject({
      status: 1,
      stderr: expect.stringContaining('BOGUS'),
    });
    expect(cr(['kill', 'sig', '15']).status).toBe(0);
    const code = await new Promise((r) => child.on('exit', r));
    expect(code).toBe(7);
    writeFileSync(out, text);
    expect(text).toContain('got-term');

    expect(cr(['run', '-d', '--bundle', bundle(['sh', '-c', 'sleep 100 & sleep 100']), 'all']).status).toBe(
      0,
    );
    const { pid } = JSON.parse(cr(['state', 'all']).stdout);
    await until(() => JSON.parse(cr(['ps', '--format', 'json', 'all']).stdout).length === 2);
    expect(cr(['kill', '--all', 'all', 'SIGKILL']).status).toBe(0);
    await until(() => !alive(pid));
    expect(cr(['delete', 'all']).status).toBe(0);
  });

  it('pause and resume freeze the cgroup and show in state; ps, events --stats and update', () => {
    expect(cr(['run', '-d', '--bundle', bundle(['sleep', '100']), 'frozen']).status).toBe(0);
    const { pid } = JSON.parse(cr(['state', 'frozen']).stdout);
    expect(JSON.parse(cr(['ps', '--format', 'json', 'frozen']).stdout)).toEqual([pid]);
    expect(cr(['ps', 'frozen']).stdout).toMatch(new RegExp(`^root +${pid} .*sleep 100$`, 'm'));
    expect(cr(['pause', 'frozen']).status).toBe(0);
    expect(JSON.parse(cr(['state', 'frozen']).stdout).status).toBe('paused');
    expect(readFileSync(`/proc/${pid}/status`, 'utf8')).toMatch(/State:\s+[DS]/);
    expect(cr(['resume', 'frozen']).status).toBe(0);
    expect(JSON.parse(cr(['state', 'frozen']).stdout).status).toBe('running');
    expect(cr(['resume', 'frozen'])).toMatchObject({
      status: 1,
      stderr: expect.stringContaining('not paused'),
    });

    const stats = JSON.parse(cr(['events', '--stats', 'frozen']).stdout);
    expect(stats).toMatchObject({ type: 'stats', id: 'frozen', data: { pids: { current: 1 } } });
    expect(stats.data.memory.usage.usage).toBeGreaterThan(0);

    expect(cr(['update', '--pids-limit', '42', '--memory', '64m', 'frozen']).status).toBe(0);
    const pidsDir = readFileSync(`/proc/${pid}/cgroup`, 'utf8').match(/:pids:(.*)/)![1];
    expect(readFileSync(`/sys/fs/cgroup/pids${pidsDir}/pids.max`, 'utf8').trim()).toBe('42');
    expect(
      cr(['update', '-r', '-', 'frozen'], { input: JSON.stringify({ pids: { limit: 43 } }) }).status,
    ).toBe(0);
    expect(readFileSync(`/sys/fs/cgroup/pids${pidsDir}/pids.max`, 'utf8').trim()).toBe('43');
    expect(cr(['delete', '--force', 'frozen']).status).toBe(0);
    expect(existsSync(`/sys/fs/cgroup/pids${pidsDir}`)).toBe(false);
  });

  it('a paused container is deleted with --force', () => {
    expect(cr(['run', '-d', '--bundle', bundle(['sleep', '100']), 'icy']).status).toBe(0);
    expect(cr(['pause', 'icy']).status).toBe(0);
    expect(cr(['delete', '--force', 'icy']).status).toBe(0);
    expect(cr(['state', 'icy']).status).toBe(1);
  });
});

describe('corral-runtime exec', () => {
  beforeAll(() => {
    expect(
      cr([
        'run',
        '-d',
        '--bundle',
        bundle(['sleep', '100'], (s) => {
          s.process.env = ['PATH=/bin', 'FROM=spec'];
        }),
        'ex',
      ]).status,
    ).toBe(0);
  });
  afterAll(() => {
    cr(['delete', '--force', 'ex']);
  });

  it('runs a command with the container’s process as the base, and exits with its status', () => {
    const r = cr([
      'exec',
      '-e',
      'EXTRA=1',
      '--cwd',
      '/bin',
      '--user',
      '65534:65534',
      'ex',
      'sh',
      '-c',
      'echo $FROM $EXTRA $(pwd) $(id -u):$(id -g); exit 5',
    ]);
    expect(r).toEqual({ status: 5, stdout: 'spec 1 /bin 65534:65534\n', stderr: '' });
  });

  it('runs a process.json (--process), as conmon and the shim pass it', () => {
    const file = join(tmp, 'process.json');
    writeFileSync(
      file,
      JSON.stringify({
        args: ['sh', '-c', 'echo $X; hostname'],
        env: ['PATH=/bin', 'X=json'],
        cwd: '/',
        user: { uid: 0, gid: 0 },
      }),
    );
    expect(cr(['exec', '--process', file, 'ex'])).toEqual({ status: 0, stdout: 'json\nrt\n', stderr: '' });
  });

  it('-d leaves the program to the caller, its host PID in --pid-file', async () => {
    const pidFile = join(tmp, 'exec.pid');
    const r = cr(['exec', '-d', '--pid-file', pidFile, 'ex', 'sleep', '77']);
    expect(r.status).toBe(0);
    const pid = Number(readFileSync(pidFile, 'utf8'));
    expect(readFileSync(`/proc/${pid}/cmdline`, 'utf8')).toBe('sleep\x0077\x00');
    process.kill(pid, 'SIGKILL');
    await until(() => !alive(pid));
  });

  it('fails with 255 for a missing container and names the missing program', () => {
    expect(cr(['exec', 'nope', 'true'])).toMatchObject({
      status: 255,
      stderr: expect.stringContaining('container nope does not exist'),
    });
    expect(cr(['exec', 'ex', 'missing-program'])).toMatchObject({
      status: 255,
      stderr: expect.stringContaining('missing-program'),
    });
  });
});

describe('corral-runtime errors and logs', () => {
  it('logs JSON lines to --log, and prints the error on stderr', () => {
    const log = join(tmp, 'log.json');
    const r = cr(['--log', log, '--log-format', 'json', 'state', 'ghost']);
    expect(r).toMatchObject({ status: 1, stderr: 'container ghost does not exist\n' });
    const line = JSON.parse(readFileSync(log, 'utf8').trim().split('\n').pop()!);
    expect(line).toEqual({
      level: 'error',
      msg: 'container ghost does not exist',
      time: expect.stringMatching(/Z$/),
    });
    expect(cr(['state', 'ghost']).stderr).toMatch(
      /^time="[^"]+" level=error msg="container ghost does not exist"\n$/,
    );
  });

  it('refuses --systemd-cgroup, unknown commands and bad usage clearly', () => {
    expect(cr(['--systemd-cgroup', 'state', 'x'])).toMatchObject({
      status: 1,
      stderr: expect.stringContaining('systemd cgroup manager is not supported'),
    });
    expect(cr(['frobnicate']).status).toBe(3);
    expect(cr(['state'])).toMatchObject({
      status: 1,
      stderr: expect.stringContaining('requires exactly 1 argument'),
    });
    expect(cr(['create', '--bogus', 'x'])).toMatchObject({
      status: 1,
      stderr: expect.stringContaining('flag provided but not defined: -bogus'),
    });
  });

  it('prints its version with the spec version', () => {
    expect(cr(['--version']).stdout).toMatch(/^corral-runtime version \S+\nspec: 1\.2\.0\n/);
  });

  it.each([
    ['linux.intelRdt', (s: OciSpec) => Object.assign(s.linux!, { intelRdt: { closID: 'x' } })],
    [
      'linux.resources.unified',
      (s: OciSpec) => Object.assign(s.linux!, { resources: { unified: { 'memory.max': '1M' } } }),
    ],
    ['process.apparmorProfile', (s: OciSpec) => Object.assign(s.process, { apparmorProfile: 'x' })],
    [
      'linux.uidMappings',
      (s: OciSpec) => Object.assign(s.linux!, { uidMappings: [{ containerID: 0, hostID: 1000, size: 1 }] }),
    ],
    [
      'linux.sysctl.kernel.panic',
      (s: OciSpec) => Object.assign(s.linux!, { sysctl: { 'kernel.panic': '1' } }),
    ],
    ['ociVersion', (s: OciSpec) => Object.assign(s, { ociVersion: '2.0.0' })],
  ])('an unsupported %s is an error naming it, with no state left', (field, change) => {
    const r = cr(['create', '--bundle', bundle(['true'], change), 'bad']);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(field);
    expect(existsSync(join(root, 'bad'))).toBe(false);
  });

  it('accepts any 1.x ociVersion', () => {
    const r = cr([
      'run',
      '--bundle',
      bundle(['true'], (s) => {
        s.ociVersion = '1.0.2-dev';
      }),
      'old',
    ]);
    expect(r.status).toBe(0);
  });
});

describe('corral-runtime features and spec', () => {
  it('prints the features JSON of runc 1.1+', () => {
    const f = JSON.parse(cr(['features']).stdout);
    expect(f).toMatchObject({
      ociVersionMin: '1.0.0',
      ociVersionMax: '1.2.0',
      hooks: ['prestart', 'createRuntime', 'createContainer', 'startContainer', 'poststart', 'poststop'],
      linux: { cgroup: { v1: true, systemd: false }, seccomp: { enabled: true } },
    });
    expect(f.mountOptions).toContain('rbind');
    expect(f.linux.capabilities).toContain('CAP_SYS_ADMIN');
    expect(f.linux.namespaces).not.toContain('user');
  });

  it('writes a sample config.json that runs', () => {
    const dir = join(tmp, 'sample');
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir);
    expect(cr(['spec', '--bundle', dir]).status).toBe(0);
    expect(cr(['spec', '--bundle', dir])).toMatchObject({
      status: 1,
      stderr: expect.stringContaining('exists'),
    });
    const spec = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    spec.root.path = rootfs;
    spec.process.terminal = false;
    spec.process.args = ['sh', '-c', 'grep NoNewPrivs /proc/self/status; hostname'];
    writeFileSync(join(dir, 'config.json'), JSON.stringify(spec));
    expect(cr(['run', '--bundle', dir, 'sample'])).toEqual({
      status: 0,
      stdout: 'NoNewPrivs:\t1\ncorral\n',
      stderr: '',
    });
  });
});
