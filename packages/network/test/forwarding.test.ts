// With forwarding on (dockerd's ip-forward, which the engine's switch turns on), the host routes
// between bridges: then only corral's CORRAL-ISOLATION rules keep one network's containers from
// another's, and ip-masq decides what source address leaves. Tests must never turn on the
// host's forwarding, so the engine's networking runs here in a network namespace of the test's
// own ("world", pinned under the test's temp folder, where ip_forward is the namespace's own
// sysctl): its bridges, veths, rules and sysctls exist only there, and vanish with it. Real
// traffic: a container namespace of network b attacks a server of network a's container.

import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BUSYBOX, Cleanups, exec, must, until } from '@corral/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import { NetnsDir } from '../src/index.js';
import { ipForward } from './helpers.js';

const c = new Cleanups();
afterEach(() => c.run());

interface World {
  ns: string;
  root: string;
  up: {
    containers: Record<string, { netns: string; ip: string; gateway: string }>;
    bridges: Record<string, string>;
    ipForward: string;
  };
}

const fixture = join(import.meta.dirname, 'fixtures/world.mjs');
const inNet = (ns: string, file: string, args: string[]) =>
  exec('nsenter', [`--net=${ns}`, '--', file, ...args]);

/** A private namespace with the engine's networking in it, as `switches` say; all undone after. */
async function world(switches: Record<string, boolean>): Promise<World> {
  const dir = c.tempDir('world');
  const pins = new NetnsDir(join(dir, 'pins'));
  const ns = pins.create('world');
  c.add(() => pins.remove('world')); // last: whatever is left inside goes with the namespace
  const root = join(dir, 'net');
  c.add(async () => {
    await must('nsenter', [`--net=${ns}`, '--', process.execPath, fixture, 'down', root]);
  });
  const r = await must('nsenter', [
    `--net=${ns}`,
    '--',
    process.execPath,
    fixture,
    'up',
    root,
    JSON.stringify(switches),
  ]);
  return { ns, root, up: JSON.parse(r.stdout) };
}

/** corral's isolation rule of a bridge, as iptables -D/-A take it. */
const isolated = (br: string) => ['-o', br, '-m', 'comment', '--comment', 'corral-isolated', '-j', 'DROP'];

/** busybox httpd in a container namespace, serving one file. */
async function serve(dir: string, netns: string, port: number, text: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'canary'), `${text}\n`);
  const srv = spawn(
    'nsenter',
    [`--net=${netns}`, '--', BUSYBOX, 'httpd', '-f', '-p', String(port), '-h', dir],
    {
      stdio: 'ignore',
    },
  );
  c.add(() => {
    srv.kill('SIGKILL');
  });
}

/** GET /canary from inside `netns`; the body, or '' when nothing answered. */
async function knock(netns: string, ip: string, port: number): Promise<string> {
  const r = await inNet(netns, BUSYBOX, [
    'sh',
    '-c',
    `printf 'GET /canary HTTP/1.0\\r\\n\\r\\n' | ${BUSYBOX} nc -w 2 ${ip} ${port}`,
  ]);
  return r.stdout.includes('200 OK') ? (r.stdout.trim().split('\n').pop() ?? '') : '';
}

/**
 * An "outside" namespace on a veth of the world (198.51.100.2; the world is 198.51.100.1) that
 * routes back to the containers' subnets, with a server that answers with the address it sees.
 */
async function outside(w: World): Promise<void> {
  const pins = new NetnsDir(join(w.root, '..', 'pins'));
  const out = pins.create('outside');
  c.add(() => pins.remove('outside'));
  const ip = (ns: string, ...args: string[]) => must('nsenter', [`--net=${ns}`, '--', 'ip', ...args]);
  await ip(w.ns, 'link', 'add', 'up0', 'type', 'veth', 'peer', 'name', 'dn0');
  await ip(w.ns, 'link', 'set', 'dn0', 'netns', out);
  await ip(w.ns, 'addr', 'add', '198.51.100.1/24', 'dev', 'up0');
  await ip(w.ns, 'link', 'set', 'up0', 'up');
  await ip(out, 'addr', 'add', '198.51.100.2/24', 'dev', 'dn0');
  await ip(out, 'link', 'set', 'dn0', 'up');
  // Without masquerade, replies come back too.
  await ip(out, 'route', 'add', '10.77.0.0/16', 'via', '198.51.100.1');
  const srv = spawn(
    'nsenter',
    [
      `--net=${out}`,
      '--',
      process.execPath,
      '-e',
      "require('net').createServer((s) => s.end(s.remoteAddress + '\\n')).listen(9000, '198.51.100.2')",
    ],
    { stdio: 'ignore' },
  );
  c.add(() => {
    srv.kill('SIGKILL');
  });
  // Up when the world itself gets an answer.
  await until(async () => (await askOutside(w.ns)) !== '', 'the outside server to answer');
}

/** What the outside server saw as the source address of a connection from `netns` ('' if none). */
async function askOutside(netns: string): Promise<string> {
  return (await inNet(netns, BUSYBOX, ['nc', '-w', '2', '198.51.100.2', '9000'])).stdout.trim();
}

describe('isolation between networks with forwarding on (in a namespace of the test)', () => {
  it('drops a container of another network even when the host forwards, and only corral rules stop it', async () => {
    expect(ipForward()).toBe('0');
    const w = await world({ iptables: true, ipForward: true, ipMasq: false });
    // The ip-forward switch turned forwarding on in the world, never on the host.
    expect(w.up.ipForward).toBe('1');
    expect(ipForward()).toBe('0');
    const { a1, b1 } = w.up.containers;
    await serve(join(w.root, '..', 'www'), a1.netns, 8080, 'secret-of-a');
    // Its own network's gateway side reaches it (the server is up).
    await until(async () => (await knock(w.ns, a1.ip, 8080)) === 'secret-of-a', 'the server in a1 to answer');
    // The attack: b1 routes to a1's address through its gateway; the world forwards.
    expect(await knock(b1.netns, a1.ip, 8080)).toBe('');
    // Control: without the isolation rules (one per bridge: the request into a, the reply into
    // b) the same packets get through; with them back, they are dropped again.
    const isolation = (op: '-D' | '-A') =>
      Promise.all(
        Object.values(w.up.bridges).map((br) =>
          must('nsenter', [`--net=${w.ns}`, '--', 'iptables', '-w', op, 'CORRAL-ISOLATION', ...isolated(br)]),
        ),
      );
    await isolation('-D');
    expect(await knock(b1.netns, a1.ip, 8080)).toBe('secret-of-a');
    await isolation('-A');
    expect(await knock(b1.netns, a1.ip, 8080)).toBe('');
    expect(ipForward()).toBe('0');
  });

  it('ip-forward off: the world does not forward, and corral turned nothing on', async () => {
    const w = await world({ iptables: true, ipForward: false, ipMasq: false });
    expect(w.up.ipForward).toBe('0');
    const { a1, b1 } = w.up.containers;
    await serve(join(w.root, '..', 'www'), a1.netns, 8080, 'secret-of-a');
    await until(async () => (await knock(w.ns, a1.ip, 8080)) === 'secret-of-a', 'the server in a1 to answer');
    for (const br of Object.values(w.up.bridges))
      await must('nsenter', [
        `--net=${w.ns}`,
        '--',
        'iptables',
        '-w',
        '-D',
        'CORRAL-ISOLATION',
        ...isolated(br),
      ]);
    // Even without the rules: no forwarding, no way across.
    expect(await knock(b1.netns, a1.ip, 8080)).toBe('');
  });

  it('ip-masq: traffic leaving the world carries its address only with the switch on', async () => {
    for (const ipMasq of [true, false]) {
      const w = await world({ iptables: true, ipForward: true, ipMasq });
      await outside(w);
      const { b1 } = w.up.containers;
      let seen = '';
      await until(async () => {
        seen = await askOutside(b1.netns);
        return seen !== '';
      }, 'the outside server to answer');
      expect(seen).toBe(ipMasq ? '198.51.100.1' : b1.ip);
      const nat = (await must('nsenter', [`--net=${w.ns}`, '--', 'iptables-save', '-t', 'nat'])).stdout;
      expect(/MASQUERADE/.test(nat)).toBe(ipMasq);
      await c.run();
    }
    expect(ipForward()).toBe('0');
  });

  it('--internal: a container that routes itself out through the gateway is dropped (forwarding on)', async () => {
    const w = await world({ iptables: true, ipForward: true, ipMasq: false });
    await outside(w);
    const { c1, b1 } = w.up.containers;
    // A normal network's container gets out (control of the path) ...
    expect(await askOutside(b1.netns)).toBe(b1.ip);
    // ... the internal one has no default route; its root adds one (the attack), and is dropped.
    expect((await inNet(c1.netns, 'ip', ['route'])).stdout).not.toMatch(/^default/m);
    await must('nsenter', [`--net=${c1.netns}`, '--', 'ip', 'route', 'add', 'default', 'via', c1.gateway]);
    expect(await askOutside(c1.netns)).toBe('');
    // Control: without corral's two rules for an internal bridge, the same attack gets out.
    const br = w.up.bridges.c;
    const closed = [
      ['-i', br, '!', '-o', br, '-m', 'comment', '--comment', 'corral-internal-out', '-j', 'DROP'],
      ['-o', br, '!', '-i', br, '-m', 'comment', '--comment', 'corral-internal-in', '-j', 'DROP'],
    ];
    for (const r of closed)
      await must('nsenter', [`--net=${w.ns}`, '--', 'iptables', '-w', '-D', 'CORRAL-FORWARD', ...r]);
    expect(await askOutside(c1.netns)).toBe(c1.ip);
    expect(ipForward()).toBe('0');
  });
});
