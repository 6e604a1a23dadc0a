import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
import { Cleanups, exec } from '@corral/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CORRALD, containerDirs, type Daemon, startDaemon } from './daemon.js';

// Raw requests against corrald: Docker's error bodies and statuses, version negotiation, the
// daemon's own flags, and a bounded fuzz after which the daemon still answers and holds no
// half-made container.
const c = new Cleanups();
let d: Daemon;

beforeAll(async () => {
  d = await startDaemon(c);
});
afterAll(() => c.run());

const create = (body: unknown, name?: string) =>
  d.api('POST', `/containers/create${name ? `?name=${name}` : ''}`, body);

describe('corrald API', () => {
  it('answers /_ping HEAD and GET with the API version', async () => {
    const head = await d.api('HEAD', '/_ping');
    expect([head.status, head.headers['api-version'], head.text]).toEqual([200, '1.47', '']);
    const get = await d.api('GET', '/_ping');
    expect([get.status, get.text]).toEqual([200, 'OK']);
  });

  it('takes /vX.Y/ prefixes between the minimum and the newest version', async () => {
    expect((await d.api('GET', '/v1.41/version')).json().ApiVersion).toBe('1.47');
    const old = await d.api('GET', '/v1.12/version');
    expect([old.status, old.json().message]).toEqual([400, expect.stringContaining('too old')]);
    const young = await d.api('GET', '/v1.99/version');
    expect([young.status, young.json().message]).toEqual([400, expect.stringContaining('too new')]);
  });

  it("answers an unknown endpoint with Docker's 404 body", async () => {
    const r = await d.api('GET', '/no/such/thing');
    expect([r.status, r.headers['content-type'], r.json()]).toEqual([
      404,
      'application/json',
      { message: 'page not found' },
    ]);
  });

  it('answers an unknown container 404, a malformed body 400, a taken name 409, removing a running one 409', async () => {
    const nf = await d.api('GET', '/containers/nope/json');
    expect([nf.status, nf.json().message]).toEqual([404, 'No such container: nope']);
    const bad = await d.api('POST', '/containers/create', '{"Image": "busybox", ');
    expect([bad.status, bad.json().message]).toEqual([400, expect.stringContaining('invalid JSON')]);
    const ok = await create(
      { Image: 'busybox', Cmd: ['sleep', '30'], HostConfig: { NetworkMode: 'none' } },
      'taken',
    );
    expect(ok.status).toBe(201);
    const again = await create({ Image: 'busybox', Cmd: ['true'] }, 'taken');
    expect(again.status).toBe(409);
    expect((await d.api('POST', '/containers/taken/start')).status).toBe(204);
    expect((await d.api('POST', '/containers/taken/start')).status).toBe(304);
    const rm = await d.api('DELETE', '/containers/taken');
    expect([rm.status, rm.json().message]).toEqual([
      409,
      expect.stringContaining('cannot remove a running container'),
    ]);
    expect((await d.api('DELETE', '/containers/taken?force=1')).status).toBe(204);
    expect(containerDirs(d.root)).toEqual([]);
  });

  it('answers a damaged record with its file and the repair in words for an API client, no CLI command', async () => {
    const made = await create(
      { Image: 'busybox', Cmd: ['true'], HostConfig: { NetworkMode: 'none' } },
      'damaged',
    );
    expect(made.status).toBe(201);
    const id = made.json().Id as string;
    const file = join(d.root, 'containers', id, 'container.json');
    const whole = readFileSync(file, 'utf8');
    writeFileSync(file, whole.slice(0, 20));
    try {
      const r = await d.api('GET', `/containers/${id}/json`);
      expect(r.status).toBe(500);
      const message = r.json().message as string;
      expect(message).toContain(`the state file ${file} is damaged`);
      expect(message).toMatch(/data root holds damaged state: its check with repair/);
      expect(message).not.toMatch(/`corral |system check|--repair/);
    } finally {
      writeFileSync(file, whole);
    }
    expect((await d.api('DELETE', `/containers/${id}`)).status).toBe(204);
  });

  it('never follows a container reference out of the data root (a planted record, a canary folder)', async () => {
    // names/../../evil -> ../x: a ref of `../../evil` once read DIR/root/x/container.json,
    // whose id `../../canary` rm -f then removed.
    const dir = dirname(d.root);
    mkdirSync(join(dir, 'canary'));
    writeFileSync(join(dir, 'canary', 'keep'), 'host data');
    mkdirSync(join(d.root, 'x'));
    writeFileSync(
      join(d.root, 'x', 'container.json'),
      JSON.stringify({
        id: '../../canary',
        name: 'zz',
        hostConfig: {},
        config: { cmd: [] },
        state: { status: 'exited' },
      }),
    );
    symlinkSync('../x', join(dir, 'evil'));
    for (const ref of ['..%2F..%2Fevil', '%2F..%2F..%2Fevil', '%2E%2E'])
      for (const [method, path] of [
        ['GET', `/containers/${ref}/json`],
        ['DELETE', `/containers/${ref}?force=1`],
      ]) {
        const r = await d.api(method, path);
        expect([method, path, r.status]).toEqual([method, path, 404]);
      }
    expect(readFileSync(join(dir, 'canary', 'keep'), 'utf8')).toBe('host data');
    rmSync(join(d.root, 'x'), { recursive: true });
  });

  it('drops an attach whose client went away before the start; the start still runs the container', async () => {
    const id = (
      await create({ Image: 'busybox', Cmd: ['sh', '-c', 'echo ran'], HostConfig: { NetworkMode: 'none' } })
    ).json().Id;
    const sock = connect(d.socket);
    await new Promise((r) => sock.once('connect', r));
    sock.write(
      `POST /containers/${id}/attach?stream=1&stdout=1&stderr=1&stdin=1 HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n`,
    );
    await new Promise((r) => sock.once('data', r)); // 101 UPGRADED
    sock.destroy();
    await new Promise((r) => setTimeout(r, 200));
    expect((await d.api('POST', `/containers/${id}/start`)).status).toBe(204);
    expect((await d.api('POST', `/containers/${id}/wait`)).json().StatusCode).toBe(0);
    const logs = await d.api('GET', `/containers/${id}/logs?stdout=1`);
    expect(logs.text.slice(8)).toBe('ran\n'); // one frame: its 8-byte header, then the line
    expect((await d.api('DELETE', `/containers/${id}`)).status).toBe(204);
  });

  it('answers a next-exit wait when its container is removed without running again, as dockerd', async () => {
    const id = (await create({ Image: 'busybox', Cmd: ['true'], HostConfig: { NetworkMode: 'none' } })).json()
      .Id;
    const waiting = d.api('POST', `/containers/${id}/wait?condition=next-exit`);
    await new Promise((r) => setTimeout(r, 300)); // the wait is listening
    expect((await d.api('DELETE', `/containers/${id}`)).status).toBe(204);
    const answer = await Promise.race([waiting, new Promise<null>((r) => setTimeout(() => r(null), 10_000))]);
    expect(answer?.json()).toEqual({ StatusCode: 0, Error: null });
  });

  it('refuses a create field that corral does not do, naming it, and makes nothing', async () => {
    for (const [host, field] of [
      [{ Binds: ['/:/host:bogus'] }, 'invalid mode: bogus'],
      [
        { Mounts: [{ Type: 'bind', Source: '/tmp', Target: '/x', BindOptions: { CreateMountpoint: true } }] },
        'HostConfig.Mounts[0].BindOptions.CreateMountpoint',
      ],
      [{ VolumeDriver: 'nfs' }, 'HostConfig.VolumeDriver'],
      [{ RestartPolicy: { Name: 'sometimes' } }, 'sometimes'],
      [{ MaskedPaths: ['/etc'] }, 'HostConfig.MaskedPaths'],
      [{ PidMode: 'host' }, 'HostConfig.PidMode'],
      [{ Devices: [{ PathOnHost: '/dev/corral-no-such-device' }] }, 'no such device'],
    ] as const) {
      const r = await create({ Image: 'busybox', Cmd: ['true'], HostConfig: host });
      expect([r.status, r.json().message]).toEqual([400, expect.stringContaining(field)]);
    }
    expect(containerDirs(d.root)).toEqual([]);
  });

  it('never opens a file a SecurityOpt seccomp names: profiles come inline (canary profile and secret)', async () => {
    // Were the path read, this valid profile would be taken and the create answered 201.
    const dir = join(d.root, '..', 'seccomp-canary');
    mkdirSync(dir, { recursive: true });
    const profile = join(dir, 'allow.json');
    writeFileSync(profile, JSON.stringify({ defaultAction: 'SCMP_ACT_ALLOW' }));
    const secret = join(dir, 'secret');
    writeFileSync(secret, 'CANARY-91c2 not json');
    for (const path of [profile, secret]) {
      const r = await create({
        Image: 'busybox',
        Cmd: ['true'],
        HostConfig: { SecurityOpt: [`seccomp=${path}`] },
      });
      expect([r.status, r.json().message]).toEqual([400, expect.stringContaining('must be inline JSON')]);
      expect(r.text).not.toContain('CANARY');
    }
    expect(containerDirs(d.root)).toEqual([]);
    const inline = await create({
      Image: 'busybox',
      Cmd: ['true'],
      HostConfig: { NetworkMode: 'none', SecurityOpt: [`seccomp=${readFileSync(profile, 'utf8')}`] },
    });
    expect(inline.status).toBe(201);
    expect((await d.api('DELETE', `/containers/${inline.json().Id}`)).status).toBe(204);
  });

  it('survives a bounded fuzz of paths and bodies and leaves no half-made container', async () => {
    const paths = [
      '/containers/create',
      '/containers/json',
      '/containers/X/json',
      '/containers/X/start',
      '/containers/X/stop',
      '/containers/X/kill',
      '/containers/X/wait',
      '/containers/X/logs',
      '/containers/X/top',
      '/containers/X/rename',
      '/containers/X/exec',
      '/exec/X/start',
      '/exec/X/json',
      '/images/json',
      '/images/X/json',
      '/images/X/tag',
      '/images/load',
      '/containers/X',
      '/images/X',
      '/info',
      '/version',
      '/events',
      '/v1.4x/info',
      '/%zz',
      '/',
    ];
    const methods = ['GET', 'POST', 'DELETE', 'PUT', 'HEAD'];
    const values = [null, 1, -1, 'x', '', [], {}, ['a'], { a: 1 }, true, 2 ** 53 + 1, '../../etc', 'busybox'];
    const pick = <T>(a: readonly T[]) => a[Math.floor(Math.random() * a.length)];
    const fields = [
      'Image',
      'Cmd',
      'Entrypoint',
      'Env',
      'Tty',
      'HostConfig',
      'User',
      'WorkingDir',
      'StopTimeout',
    ];
    for (let i = 0; i < 250; i++) {
      const path = pick(paths).replace('X', pick(['busybox', 'nope', '..', '%2e%2e', 'a'.repeat(300)]));
      const query = pick([
        '',
        '?all=1',
        '?filters=%7Bbad',
        '?condition=zzz',
        '?t=abc',
        '?name=a/b',
        '?tail=-5',
      ]);
      let body: unknown;
      const kind = i % 3;
      if (kind === 0) body = randomBytes(Math.floor(Math.random() * 200));
      else if (kind === 1) {
        const o: Record<string, unknown> = {};
        for (const f of fields) if (Math.random() < 0.5) o[f] = pick(values);
        if (o.HostConfig && typeof o.HostConfig === 'object')
          (o.HostConfig as Record<string, unknown>).NetworkMode = 'none';
        body = o;
      }
      const r = await Promise.race([
        d.api(pick(methods), `${path}${query}`, body),
        new Promise<null>((res) => setTimeout(() => res(null), 3000)), // a wait or follow that blocks
      ]);
      if (r && r.status >= 400 && r.text) expect(JSON.parse(r.text)).toHaveProperty('message');
      if (r) expect(r.status).not.toBe(500);
    }
    expect((await d.api('GET', '/_ping')).status).toBe(200);
    expect(d.child.exitCode).toBeNull();
    const listed = (await d.api('GET', '/containers/json?all=1')).json().map((x: { Id: string }) => x.Id);
    expect(containerDirs(d.root).sort()).toEqual(listed.sort());
  });
});

describe('corrald flags', () => {
  it('refuses a second corrald on the same data root', async () => {
    const r = await exec(process.execPath, [
      CORRALD,
      '-H',
      `unix://${d.socket}.2`,
      '--data-root',
      d.root,
      '--exec-root',
      `${d.execRoot}2`,
    ]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`another corrald (pid ${d.child.pid}) is using the data root`);
    expect((await d.api('GET', '/_ping')).status).toBe(200); // the first one untouched
  });

  it('refuses a setting given both as a flag and in the config file, and a tcp host', async () => {
    const file = join(d.execRoot, '..', 'daemon.json');
    writeFileSync(file, JSON.stringify({ 'log-level': 'warn' }));
    const both = await exec(process.execPath, [CORRALD, '--config-file', file, '--log-level', 'debug']);
    expect([both.status, both.stderr]).toEqual([
      1,
      expect.stringContaining('both as a flag and in the configuration file: log-level'),
    ]);
    const tcp = await exec(process.execPath, [CORRALD, '-H', 'tcp://0.0.0.0:2375']);
    expect([tcp.status, tcp.stderr]).toEqual([1, expect.stringContaining('only on unix://PATH sockets')]);
  });

  it('gives the socket to --group, still 0660, and removes it on SIGTERM', async () => {
    const cc = new Cleanups();
    try {
      const g = await startDaemon(cc, ['--group', '4']); // Debian's adm
      const s = statSync(g.socket);
      expect([s.mode & 0o777, s.uid, s.gid]).toEqual([0o660, 0, 4]);
      const exited = new Promise((r) => g.child.once('exit', r));
      g.child.kill('SIGTERM');
      await exited;
      expect(() => statSync(g.socket)).toThrow();
    } finally {
      await cc.run();
    }
  });
});
