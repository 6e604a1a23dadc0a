import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { Cleanups, until } from '@corral/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Daemon, startDaemon } from './daemon.js';
import { onTerminal } from './pty.js';

// Terminals through corrald, driven as a user does: the docker CLI on a pty held by the test.
// Detach keys (ctrl-p,ctrl-q, --detach-keys, config.json's detachKeys) end an attachment and
// leave the container running, to be attached again; a resize of the client's terminal (the
// CLI's SIGWINCH, and at attach) reaches the container's terminal, kept by its keeper.
const c = new Cleanups();
let d: Daemon;
let env: NodeJS.ProcessEnv;
beforeAll(async () => {
  d = await startDaemon(c);
  env = {
    ...process.env,
    DOCKER_HOST: `unix://${d.socket}`,
    DOCKER_CONFIG: join(dirname(d.root), 'docker-config'),
  };
});
afterAll(() => c.run());

const must = async (args: string[]) => {
  const r = await d.docker(args);
  if (r.status !== 0) throw new Error(`docker ${args.join(' ')}: ${r.stderr}`);
  return r;
};
const running = async (name: string) => (await must(['inspect', '-f', '{{.State.Running}}', name])).out;
const PROMPT = '/ # ';

/**
 * POST .../attach (or exec .../start, with its JSON body) upgraded by hand: what the daemon
 * sends back, and the socket to type on.
 */
async function rawAttach(
  path: string,
  body = '',
): Promise<{ conn: Socket; got: () => string; ended: Promise<void> }> {
  const conn = netConnect(d.socket);
  let got = '';
  conn.on('data', (b) => {
    got += b.toString('latin1');
  });
  const ended = new Promise<void>((r) => conn.once('end', () => r()));
  c.add(() => conn.destroy());
  conn.write(
    `POST ${path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
  );
  await until(() => got.includes('101 UPGRADED'), `the upgrade (got: ${got})`);
  return { conn, got: () => got, ended };
}

describe('detach keys', () => {
  it('docker run -it: ctrl-p ctrl-q detaches and the container runs on; docker attach --detach-keys reaches it again', async () => {
    const run = onTerminal(
      c,
      ['docker', 'run', '-it', '--name', 'dk', '--network', 'none', 'busybox', 'sh'],
      env,
    );
    await run.expect('', PROMPT).catch((e) => {
      throw new Error(`${e.message}\n${d.log().slice(-3000)}`);
    });
    await run.expect('echo one-$((1+1))\r', 'one-2');
    run.type('\x10\x11');
    expect(await run.exited).toBe(0); // docker run: detached is done
    expect(await running('dk')).toBe('true');

    const again = onTerminal(c, ['docker', 'attach', '--detach-keys', 'ctrl-x,x', 'dk'], env);
    await again.expect('echo two-$((2+2))\r', 'two-4');
    again.type('\x18x');
    // The docker CLI's own words and status for a detached attach (as against dockerd).
    expect(await again.exited).toBe(1);
    expect(again.out()).toContain('read escape sequence');
    expect(await running('dk')).toBe('true');
    // Its output was kept all along by its keeper: the log has both.
    const logs = (await must(['logs', 'dk'])).stdout;
    expect(logs).toContain('one-2');
    expect(logs).toContain('two-4');
  });

  it("takes the client config's detachKeys (config.json) as the default", async () => {
    const config = join(dirname(d.root), 'docker-config-keys');
    mkdirSync(config, { recursive: true });
    writeFileSync(join(config, 'config.json'), JSON.stringify({ detachKeys: 'ctrl-e,e' }));
    const a = onTerminal(c, ['docker', 'attach', 'dk'], { ...env, DOCKER_CONFIG: config });
    await a.expect('echo three-$((1+2))\r', 'three-3');
    a.type('\x05e');
    expect(await a.exited).toBe(1);
    expect(a.out()).toContain('read escape sequence');
    expect(await running('dk')).toBe('true');
  });

  it.skipIf(!existsSync('/usr/bin/docker'))(
    "Debian's docker 20.10 attaches and detaches with ctrl-p ctrl-q too",
    async () => {
      const a = onTerminal(c, ['/usr/bin/docker', 'attach', 'dk'], env);
      await a.expect('echo old-$((4+4))\r', 'old-8');
      a.type('\x10\x11');
      expect(await a.exited).toBe(1);
      expect(a.out()).toContain('read escape sequence');
      expect(await running('dk')).toBe('true');
    },
  );

  it('docker exec -it: ctrl-p ctrl-q leaves the exec, which runs on', async () => {
    const ex = onTerminal(c, ['docker', 'exec', '-it', 'dk', 'sh'], env);
    await ex.expect('', PROMPT);
    await ex.expect('exec sleep 4321\r', '');
    ex.type('\x10\x11');
    expect(await ex.exited).toBe(1);
    expect(ex.out()).toContain('read escape sequence');
    expect((await must(['top', 'dk', '-o', 'pid,args'])).out).toContain('sleep 4321');
  });

  it("the daemon itself detaches a raw client on its detachKeys (attach and exec), and refuses a bad spec with dockerd's 400", async () => {
    const a = await rawAttach('/v1.47/containers/dk/attach?stream=1&stdin=1&stdout=1&detachKeys=ctrl-a,b');
    a.conn.write('echo raw-$((5+5))\r');
    await until(
      () => a.got().includes('raw-10'),
      `the shell's answer (got: ${JSON.stringify(a.got())})`,
      15_000,
    );
    a.conn.write('\x01b');
    await a.ended;
    expect(await running('dk')).toBe('true');

    const made = await d.api('POST', '/v1.47/containers/dk/exec', {
      Cmd: ['sh'],
      Tty: true,
      AttachStdin: true,
      AttachStdout: true,
      DetachKeys: 'ctrl-a,b',
    });
    expect(made.status, made.text).toBe(201);
    const execId = made.json().Id;
    expect((await d.api('GET', `/v1.47/exec/${execId}/json`)).json().DetachKeys).toBe('ctrl-a,b');
    const { conn, got, ended } = await rawAttach(
      `/v1.47/exec/${execId}/start`,
      JSON.stringify({ Detach: false, Tty: true }),
    );
    conn.write('echo ex-$((3+3))\r');
    await until(() => got().includes('ex-6'), `the exec's answer (got: ${JSON.stringify(got())})`, 15_000);
    conn.write('\x01b');
    await ended;
    expect((await d.api('GET', `/v1.47/exec/${execId}/json`)).json().Running).toBe(true);

    const bad = await d.api(
      'POST',
      '/v1.47/containers/dk/attach?stream=1&stdin=1&stdout=1&detachKeys=ctrl-1',
    );
    expect(bad.status).toBe(400);
    expect(bad.json().message).toContain('Invalid detach keys (ctrl-1) provided');
    const badExec = await d.api('POST', '/v1.47/containers/dk/exec', { Cmd: ['sh'], DetachKeys: 'ctrl-,x' });
    expect(badExec.status).toBe(400);
    await must(['rm', '-f', 'dk']);
  });
});

describe('the terminal size of a detached -dit container', () => {
  it("docker attach sets it at attach and on the client's SIGWINCH; stty size inside shows it", async () => {
    await must(['run', '-dit', '--name', 'rs', '--network', 'none', 'busybox', 'sh']);
    const a = onTerminal(c, ['docker', 'attach', 'rs'], env, { rows: 31, cols: 101 });
    await a.expect('stty size\r', '31 101');
    a.resize(42, 123);
    await a.expect('stty size\r', '42 123');
    a.type('\x10\x11');
    expect(await a.exited).toBe(1);
    expect(await running('rs')).toBe('true');
  });

  it('a -dit container restarted by its restart policy takes input and sizes on its new terminal', async () => {
    await must([
      'run',
      '-dit',
      '--restart',
      'on-failure:1',
      '--name',
      'rt',
      '--network',
      'none',
      'busybox',
      'sh',
    ]);
    const a = onTerminal(c, ['docker', 'attach', 'rt'], env, { rows: 25, cols: 85 });
    await a.expect('stty size\r', '25 85');
    a.type('exit 3\r');
    await a.exited;
    await until(
      async () =>
        (await d.docker(['inspect', '-f', '{{.RestartCount}} {{.State.Running}}', 'rt'])).out === '1 true',
      'the restart',
      20_000,
    );
    const b = onTerminal(c, ['docker', 'attach', 'rt'], env, { rows: 33, cols: 99 });
    await b.expect('stty size\r', '33 99');
    b.resize(44, 111);
    await b.expect('stty size\r', '44 111');
    b.type('\x10\x11');
    expect(await b.exited).toBe(1);
    await must(['rm', '-f', 'rt']);
  });

  it('POST /containers/{id}/resize with no client attached reaches the terminal too', async () => {
    const r = await d.api('POST', '/v1.47/containers/rs/resize?h=17&w=57');
    expect(r.status).toBe(200);
    expect((await must(['exec', 'rs', 'stty', '-F', '/dev/pts/0', 'size'])).out).toBe('17 57');
    // A container without a terminal: nothing to size, and no error (as the CLI sends it anyway).
    await must(['run', '-d', '--name', 'plain', '--network', 'none', 'busybox', 'sleep', '300']);
    expect((await d.api('POST', '/v1.47/containers/plain/resize?h=10&w=10')).status).toBe(200);
    await must(['rm', '-f', 'rs', 'plain']);
  });
});
