import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { join } from 'node:path';
import { Cleanups, until } from '@corral/testkit';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { NetworkManager, parsePort } from '../src/index.js';
import {
  BUSYBOX,
  busybox,
  hostState,
  inNs,
  ipForward,
  leases,
  scoped,
  testManager,
  unrouted,
} from './helpers.js';

const c = new Cleanups();
afterEach(() => c.run());
beforeAll(() => {
  // The rule of these machines: tests run with forwarding off and must not turn it on.
  expect(ipForward()).toBe('0');
});

function fetchText(url: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    const req = get(url, (res) => {
      let body = '';
      res.on('data', (d) => {
        body += d;
      });
      res.on('end', () => resolve(res.statusCode === 200 ? body : undefined));
    });
    req.on('error', () => resolve(undefined));
    req.setTimeout(2000, () => req.destroy());
  });
}

describe('bridge networks on the CNI plugins', () => {
  it('two namespaces on one bridge reach each other; a third network cannot reach them', async () => {
    const mgr = testManager(c, 'reach');
    const n1 = await mgr.createNetwork({ name: 'n1' });
    const n2 = await mgr.createNetwork({ name: 'n2' });
    expect(await unrouted(n1.subnet)).toBe(true);
    expect(await unrouted(n2.subnet)).toBe(true);
    const a = await mgr.createSandbox('a');
    const b = await mgr.createSandbox('b');
    const x = await mgr.createSandbox('x');
    const aa = await mgr.connect('a', 'alpha', 'n1');
    const bb = await mgr.connect('b', 'beta', 'n1');
    await mgr.connect('x', 'xray', 'n2');
    expect(aa.ip).toMatch(/^10\.213\./);
    expect(aa.ip).not.toBe(bb.ip);

    expect((await busybox(a, 'ping', '-c', '1', '-W', '3', bb.ip as string)).status).toBe(0);
    expect((await busybox(b, 'ping', '-c', '1', '-W', '3', aa.ip as string)).status).toBe(0);
    // TCP too: busybox nc between the two namespaces.
    // The listener's stdin stays open: on an EOF there busybox nc may quit before printing.
    const srv = spawn('nsenter', [`--net=${b}`, '--', BUSYBOX, 'nc', '-l', '-p', '7000'], {
      stdio: ['pipe', 'pipe', 'ignore'],
    });
    c.add(() => srv.kill('SIGKILL'));
    let got = '';
    srv.stdout.on('data', (d) => {
      got += d;
    });
    await until(
      async () => (await inNs(a, BUSYBOX, ['sh', '-c', `echo hello | nc -w 2 ${bb.ip} 7000`])).status === 0,
      'nc a -> b',
    );
    await until(() => got.includes('hello'), 'the message at b');

    expect((await busybox(x, 'ping', '-c', '1', '-W', '1', aa.ip as string)).status).not.toBe(0);
    expect((await busybox(x, 'ping', '-c', '1', '-W', '1', bb.ip as string)).status).not.toBe(0);
    expect(ipForward()).toBe('0');
    // Were the host to forward: each bridge's packets to another corral bridge are dropped.
    const rules = (await hostState()).rules;
    for (const br of [n1.bridge, n2.bridge]) {
      expect(rules).toContain(
        `filter/CORRAL-ISOLATION -o ${br} -m comment --comment corral-isolated -j DROP`,
      );
      expect(rules).toContain(
        `filter/CORRAL-FORWARD -i ${br} ! -o ${br} -m comment --comment corral-isolate -j CORRAL-ISOLATION`,
      );
    }
    expect(rules).toContain('filter/FORWARD -m comment --comment corral-forward -j CORRAL-FORWARD');
    // Names as peers see them (corral keeps /etc/hosts current from these).
    expect(mgr.peers('n1', 'a')).toEqual([{ ip: bb.ip, names: ['beta'] }]);
  });

  it('--network none: a namespace with only lo, up', async () => {
    const mgr = testManager(c, 'none');
    const ns = await mgr.createSandbox('lonely');
    const links = JSON.parse((await inNs(ns, 'ip', ['-j', 'link', 'show'])).stdout) as {
      ifname: string;
      flags: string[];
    }[];
    expect(links.map((l) => l.ifname)).toEqual(['lo']);
    expect(links[0].flags).toContain('UP');
    expect((await busybox(ns, 'ping', '-c', '1', '-W', '1', '127.0.0.1')).status).toBe(0);
  });

  it('a port published on 127.0.0.1 serves busybox httpd running in the namespace', async () => {
    const mgr = testManager(c, 'publish');
    await mgr.defaultNetwork();
    const ns = await mgr.createSandbox('web');
    const att = await mgr.connect('web', 'web', 'bridge', { ports: [parsePort('127.0.0.1::8080')] });
    const port = att.ports[0].hostPort;
    expect(port).toBeGreaterThan(0);
    const www = c.tempDir('www');
    mkdirSync(join(www, 'sub'));
    writeFileSync(join(www, 'index.html'), 'served from a namespace\n');
    const httpd = spawn('nsenter', [`--net=${ns}`, '--', BUSYBOX, 'httpd', '-f', '-p', '8080', '-h', www], {
      stdio: 'ignore',
    });
    c.add(() => httpd.kill('SIGKILL'));
    const body = await until(
      () => fetchText(`http://127.0.0.1:${port}/index.html`),
      'the published port to answer',
    );
    expect(body).toBe('served from a namespace\n');
    // The host's own port table has nothing on it: the kernel's DNAT serves it.
    expect(ipForward()).toBe('0');
  });

  it('teardown leaves no veth, bridge, rule, lease or namespace', async () => {
    const before = await hostState();
    const mgr = testManager(c, 'teardown');
    await mgr.createNetwork({ name: 'tn' });
    await mgr.createSandbox('t1');
    const att = await mgr.connect('t1', 't1', 'tn', {
      ports: [parsePort('127.0.0.1::80'), parsePort('127.0.0.1::53/udp')],
    });
    const bridge = mgr.networks.get('tn').bridge;
    // Other tests on the machine make and remove links and rules meanwhile: only this
    // manager's (its bridge, its veths, rules naming them or its ports) are compared.
    const names = [bridge, ...(att.result?.interfaces ?? []).filter((i) => !i.sandbox).map((i) => i.name)];
    const ports = att.ports.map((p) => `${p.hostPort}`);
    const ours = (h: Awaited<ReturnType<typeof hostState>>) => ({
      links: h.links.filter((l) => names.includes(l)),
      rules: h.rules.filter((r) => names.some((n) => r.includes(n)) || ports.some((p) => r.includes(p))),
    });
    const during = ours(await hostState());
    expect(during.links).toHaveLength(2);
    expect(during.rules.length).toBeGreaterThan(0);
    expect(ours(before)).toEqual({ links: [], rules: [] });
    expect(await leases(mgr)).toHaveLength(1);

    await mgr.destroySandbox('t1');
    // The network outlives its last container with its bridge: the next one joins faster.
    expect(ours(await hostState()).links).toEqual([bridge]);
    expect(await leases(mgr)).toEqual([]);
    await mgr.createSandbox('t2');
    await mgr.connect('t2', 't2', 'tn');
    await mgr.destroySandbox('t2');
    expect(await mgr.down()).toEqual([bridge]); // host side gone, the network stays as data
    expect(ours(await hostState()).links).toEqual([]);
    expect(mgr.networks.find('tn')?.bridge).toBe(bridge);
    await mgr.removeNetwork('tn');
    expect(ours(await hostState())).toEqual({ links: [], rules: [] });
    expect(await leases(mgr)).toEqual([]);
    expect(mgr.netns.list()).toEqual([]);
  });

  it("takes its rules away also when the root's iptables switch was turned off since they were made", async () => {
    const mgr = testManager(c, 'switched');
    const net = await mgr.createNetwork({ name: 'sw' });
    await mgr.createSandbox('s1');
    const att = await mgr.connect('s1', 's1', 'sw', { ports: [parsePort('127.0.0.1::80')] });
    const port = att.ports[0].hostPort;
    expect(scoped(await hostState(), [net.bridge], [port]).rules.length).toBeGreaterThan(0);
    // The same root, now with iptables off (corral --iptables=false): it adds no rule, and
    // still removes the ones it made before.
    const off = new NetworkManager({ root: mgr.root, switches: { iptables: false } });
    await off.destroySandbox('s1');
    await off.removeNetwork('sw');
    expect(scoped(await hostState(), [net.bridge], [port])).toEqual({ links: [], rules: [] });
  });
});
