import { readFileSync } from 'node:fs';
import net from 'node:net';
import { BUSYBOX, Cleanups, exec, must, until } from '@corral/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import { GUARD_COMMENT, parsePort } from '../src/index.js';
import { inNs, testManager } from './helpers.js';

/**
 * What a container's root could do with what this package gives it (a veth on a bridge
 * where portmap set route_localnet, its own namespace), run for real against canaries the
 * test binds on the host. The namespaces here are as strong as a container root with every
 * capability in its network namespace (CAP_NET_ADMIN and CAP_NET_RAW): stronger than a
 * default container.
 */
const c = new Cleanups();
afterEach(() => c.run());

/** A TCP listener on the host that counts who connected. */
async function canary(host: string | { path: string }): Promise<{ hits: () => number; port: number }> {
  let hits = 0;
  const open = new Set<net.Socket>();
  const srv = net.createServer((s) => {
    hits++;
    open.add(s);
    s.on('close', () => open.delete(s));
    s.on('error', () => {});
    s.end('canary\n');
  });
  await new Promise<void>((r) =>
    typeof host === 'string' ? srv.listen(0, host, r) : srv.listen(host.path, r),
  );
  c.add(
    () =>
      new Promise((r) => {
        for (const s of open) s.destroy();
        srv.close(r);
      }),
  );
  const addr = srv.address();
  return { hits: () => hits, port: typeof addr === 'object' && addr ? addr.port : 0 };
}

/** The attack of CVE-2020-8558, from inside: send to 127.0.0.1 through the gateway. */
const routeLoopbackViaGateway = (gw: string) =>
  [
    'sysctl -qw net.ipv4.conf.all.route_localnet=1 net.ipv4.conf.eth0.route_localnet=1',
    'ip rule add pref 100 lookup local',
    'ip rule del pref 0',
    'ip rule add pref 10 to 127.0.0.0/8 lookup 100',
    `ip route add 127.0.0.0/8 via ${gw} dev eth0 table 100`,
  ].join(' && ');

describe('what a container root could abuse', () => {
  it("cannot reach the host's 127.0.0.1 services, also through the gateway of a bridge with route_localnet", async () => {
    const mgr = testManager(c, 'localnet');
    const n = await mgr.createNetwork({ name: 'ln' });
    const ns = await mgr.createSandbox('evil');
    // A published port on 127.0.0.1 makes portmap set route_localnet on the bridge.
    await mgr.connect('evil', 'evil', 'ln', { ports: [parsePort('127.0.0.1::80')] });
    expect(readFileSync(`/proc/sys/net/ipv4/conf/${n.bridge}/route_localnet`, 'utf8').trim()).toBe('1');
    const host = await canary('127.0.0.1');
    const knock = () => inNs(ns, BUSYBOX, ['sh', '-c', `echo x | nc -w 2 127.0.0.1 ${host.port}`]);

    // Plainly: 127.0.0.1 in the namespace is its own loopback.
    expect((await knock()).stdout).not.toContain('canary');
    // Through the gateway: the attack is possible (control, guard taken away) ...
    await must('nsenter', [`--net=${ns}`, '--', 'sh', '-c', routeLoopbackViaGateway(n.gateway)]);
    const guard = [
      'PREROUTING',
      '-i',
      n.bridge,
      '-d',
      '127.0.0.0/8',
      '-m',
      'comment',
      '--comment',
      GUARD_COMMENT,
      '-j',
      'DROP',
    ];
    await must('iptables', ['-w', '-t', 'raw', '-D', ...guard]);
    try {
      await until(
        async () => (await knock()).stdout.includes('canary'),
        'the unguarded attack to reach the canary',
        10_000,
      );
    } finally {
      await must('iptables', ['-w', '-t', 'raw', '-I', ...guard]);
    }
    const seen = host.hits();
    expect(seen).toBeGreaterThan(0);
    // ... and the guard corral puts on every bridge stops it.
    const r = await knock();
    expect(r.stdout).not.toContain('canary');
    expect(host.hits()).toBe(seen);
  });

  it("cannot reach the host's abstract unix sockets", async () => {
    const mgr = testManager(c, 'abstract');
    const ns = await mgr.createSandbox('evil');
    const name = `corral-canary-${process.pid}`;
    const host = await canary({ path: `\0${name}` });
    const probe = `require('net').connect('\\0${name}').on('data', (d) => { process.stdout.write(String(d)); process.exit(0); }).on('error', (e) => { console.log(e.code); process.exit(1); })`;
    // Control: from the host's namespace the canary answers.
    expect((await exec(process.execPath, ['-e', probe])).stdout).toContain('canary');
    const hits = host.hits();
    const r = await inNs(ns, process.execPath, ['-e', probe]);
    expect(r.stdout.trim()).toBe('ECONNREFUSED');
    expect(host.hits()).toBe(hits);
  });

  it("AF_PACKET sees only the namespace's own links, never the host's", async () => {
    const mgr = testManager(c, 'packet');
    const n = await mgr.createNetwork({ name: 'pk' });
    const ns = await mgr.createSandbox('evil');
    await mgr.connect('evil', 'evil', 'pk');
    const py = [
      'import socket, errno',
      'print(sorted(n for _, n in socket.if_nameindex()))',
      's = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))',
      `for name in ${JSON.stringify([n.bridge, 'ifb0'])}:`,
      '  try:',
      '    s.bind((name, 0)); print("bound", name)',
      '  except OSError as e: print(errno.errorcode[e.errno])',
    ].join('\n');
    const r = await inNs(ns, 'python3', ['-c', py]);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim().split('\n')).toEqual(["['eth0', 'lo']", 'ENODEV', 'ENODEV']);
    // The namespace's eth0 is its veth end, not the host's eth0.
    const hostMac = readFileSync('/sys/class/net/eth0/address', 'utf8').trim();
    const links = JSON.parse((await inNs(ns, 'ip', ['-j', 'link', 'show'])).stdout) as { address: string }[];
    expect(links.map((l) => l.address)).not.toContain(hostMac);
  });
});
