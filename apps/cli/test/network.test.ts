// Networking as a Docker user sees it: a private namespace per container, published ports,
// user networks with names, none and host modes, and nothing left on the host afterwards.
// Traffic goes only between the host's loopback and published ports, and between containers
// on networks this file made; ip forwarding stays off.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { freePort } from '@corral/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Sandbox, until } from './helpers.js';

const s = new Sandbox();
const hostLinks = () => readdirSync('/sys/class/net').sort();
const ipForward = () => readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim();
/** iptables lines (all tables) that mention any of `needles`. */
const rulesWith = (needles: string[]) =>
  execFileSync('iptables-save', { encoding: 'utf8' })
    .split('\n')
    .filter((l) => needles.some((n) => n && l.includes(n)));
/** Every file under the data root's network state that says a container is on the network. */
const networkState = () => {
  const dir = join(s.root, 'network');
  const list = (d: string) => {
    try {
      return readdirSync(join(dir, d));
    } catch {
      return [];
    }
  };
  const leases = list('ipam').flatMap((n) =>
    list(join('ipam', n)).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f)),
  );
  return { netns: list('netns'), attachments: list('attachments'), leases };
};

function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => {
        body += d;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
  });
}

const httpd = (file: string, text: string) =>
  `mkdir -p /www && echo ${text} > /www/${file} && exec httpd -f -p 8080 -h /www`;

const bridges: string[] = [];
let hostPort = 0;

beforeAll(() => {
  expect(ipForward()).toBe('0');
});

afterAll(async () => {
  await s.teardown();
});

describe('corral networking', () => {
  it('publishes a port on 127.0.0.1 that a client on the host fetches; port and ps show it', async () => {
    hostPort = await freePort();
    const run = await s.corral([
      'run',
      '-d',
      '--name',
      'web',
      '-p',
      `127.0.0.1:${hostPort}:8080`,
      'busybox',
      'sh',
      '-c',
      httpd('hello.txt', 'hello-from-corral'),
    ]);
    expect(run.stderr).toBe('');
    let res = { status: 0, body: '' };
    await until(async () => {
      res = await get(hostPort, '/hello.txt').catch(() => res);
      return res.status === 200;
    }, 'httpd to answer through the published port');
    expect(res.body).toBe('hello-from-corral\n');
    expect((await s.corral(['port', 'web'])).out).toBe(`8080/tcp -> 127.0.0.1:${hostPort}`);
    expect((await s.corral(['port', 'web', '8080/tcp'])).out).toBe(`127.0.0.1:${hostPort}`);
    expect((await s.corral(['ps'])).out).toContain(`127.0.0.1:${hostPort}->8080/tcp`);
    const net = JSON.parse((await s.corral(['network', 'inspect', 'bridge'])).out)[0];
    bridges.push(net.bridge);
    expect(net.containers.map((c: { name: string }) => c.name)).toEqual(['web']);
  });

  it("gives a default container a network namespace of its own, with none of the host's links", async () => {
    const r = await s.corral([
      'run',
      '--rm',
      'busybox',
      'sh',
      '-c',
      'readlink /proc/self/ns/net; ls /sys/class/net',
    ]);
    const [ns, ...links] = r.out.split('\n');
    expect(ns).toMatch(/^net:\[\d+\]$/);
    expect(ns).not.toBe(readlinkSync('/proc/self/ns/net'));
    expect(links.sort()).toEqual(['eth0', 'lo']);
    // Its eth0 is its own veth end, not the host's.
    const mac = (await s.corral(['run', '--rm', 'busybox', 'cat', '/sys/class/net/eth0/address'])).out;
    expect(mac).not.toBe(readFileSync('/sys/class/net/eth0/address', 'utf8').trim());
  });

  it("cannot open AF_PACKET on the host's interfaces", async () => {
    // arping binds an AF_PACKET socket to the interface named: the host's bridge is not there.
    const r = await s.corral([
      'run',
      '--rm',
      'busybox',
      'arping',
      '-c',
      '1',
      '-w',
      '1',
      '-I',
      bridges[0],
      '10.0.0.1',
    ]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/No such device/i);
  });

  it('--network none has only lo; --network host sees the host interfaces', async () => {
    const none = await s.corral(['run', '--rm', '--network', 'none', 'busybox', 'ls', '/sys/class/net']);
    expect(none.out.split('\n')).toEqual(['lo']);
    const host = await s.corral([
      'run',
      '--rm',
      '--network',
      'host',
      'busybox',
      'sh',
      '-c',
      'readlink /proc/self/ns/net; ls /sys/class/net',
    ]);
    const [ns, ...links] = host.out.split('\n');
    expect(ns).toBe(readlinkSync('/proc/self/ns/net'));
    expect(links).toContain('eth0');
    expect(links).toContain('lo');
  });

  it('containers on one user network reach each other by name; one on another network cannot', async () => {
    expect((await s.corral(['network', 'create', 'n1'])).status).toBe(0);
    expect((await s.corral(['network', 'create', 'n2'])).status).toBe(0);
    for (const n of ['n1', 'n2'])
      bridges.push(JSON.parse((await s.corral(['network', 'inspect', n])).out)[0].bridge);
    await s.corral([
      'run',
      '-d',
      '--name',
      'alpha',
      '--network',
      'n1',
      'busybox',
      'sh',
      '-c',
      httpd('a', 'from-alpha'),
    ]);
    await s.corral([
      'run',
      '-d',
      '--name',
      'beta',
      '--network',
      'n1',
      'busybox',
      'sh',
      '-c',
      httpd('b', 'from-beta'),
    ]);
    await s.corral(['run', '-d', '--name', 'gamma', '--network', 'n2', 'busybox', 'sleep', '60']);
    // nc with a timeout (busybox wget -T crashes): the body is the answer's last line.
    const fetch = async (from: string, url: string) => {
      const [, host, path] = /^http:\/\/([^/:]+):8080(\/.*)$/.exec(url) ?? [];
      const r = await s.corral([
        'exec',
        from,
        'sh',
        '-c',
        `printf 'GET ${path} HTTP/1.0\\r\\n\\r\\n' | nc -w 2 ${host} 8080`,
      ]);
      const ok = r.status === 0 && r.out.startsWith('HTTP/1.1 200');
      return { status: ok ? 0 : 1, out: ok ? (r.out.split('\n').pop() ?? '') : r.out };
    };
    let r = await fetch('alpha', 'http://beta:8080/b');
    await until(async () => {
      r = await fetch('alpha', 'http://beta:8080/b');
      return r.status === 0;
    }, 'alpha to reach beta by name');
    expect(r.out).toBe('from-beta');
    expect((await fetch('beta', 'http://alpha:8080/a')).out).toBe('from-alpha');
    // gamma knows no such names, and the addresses do not answer across networks.
    const alphaIp = JSON.parse((await s.corral(['inspect', 'alpha'])).out)[0].networkSettings.networks.n1.ip;
    expect(alphaIp).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    expect((await fetch('gamma', 'http://alpha:8080/a')).status).not.toBe(0);
    expect((await fetch('gamma', `http://${alphaIp}:8080/a`)).status).not.toBe(0);
    // connect makes gamma a peer (both /etc/hosts are rewritten); disconnect undoes it.
    expect((await s.corral(['network', 'connect', 'n1', 'gamma'])).status).toBe(0);
    expect((await fetch('gamma', 'http://alpha:8080/a')).out).toBe('from-alpha');
    expect((await s.corral(['exec', 'alpha', 'cat', '/etc/hosts'])).out).toMatch(/\sgamma$/m);
    expect((await s.corral(['network', 'disconnect', 'n1', 'gamma'])).status).toBe(0);
    expect((await s.corral(['exec', 'alpha', 'cat', '/etc/hosts'])).out).not.toMatch(/\sgamma$/m);
    // rm of a peer takes its name out of the others' /etc/hosts.
    await s.corral(['rm', '-f', 'beta']);
    expect((await s.corral(['exec', 'alpha', 'cat', '/etc/hosts'])).out).not.toMatch(/\sbeta$/m);
    const rm = await s.corral(['network', 'rm', 'n1']);
    expect(rm.status).toBe(1);
    expect(rm.stderr).toContain('in use');
  });

  it('writes --hostname, --add-host and --dns into /etc, and --ip on a user network', async () => {
    const net = JSON.parse((await s.corral(['network', 'inspect', 'n2'])).out)[0];
    const ip = net.subnet.replace(/\.0\/24$/, '.77');
    const r = await s.corral([
      'run',
      '--rm',
      '--network',
      'n2',
      '--ip',
      ip,
      '--hostname',
      'box',
      '--add-host',
      'db:10.9.9.9',
      '--dns',
      '192.0.2.53',
      '--dns-search',
      'example.test',
      '--dns-option',
      'ndots:2',
      '--mac-address',
      '02:42:0a:00:00:99',
      'busybox',
      'sh',
      '-c',
      'cat /etc/hostname /etc/hosts /etc/resolv.conf; ip -o -4 addr show eth0; cat /sys/class/net/eth0/address',
    ]);
    expect(r.stderr).toBe('');
    expect(r.out).toMatch(/^box$/m);
    expect(r.out).toMatch(/^10\.9\.9\.9\tdb$/m);
    expect(r.out).toMatch(new RegExp(`^${ip.replace(/\./g, '\\.')}\\tbox$`, 'm'));
    expect(r.out).toMatch(/^nameserver 192\.0\.2\.53$/m);
    expect(r.out).toMatch(/^search example\.test$/m);
    expect(r.out).toMatch(/^options ndots:2$/m);
    expect(r.out).toContain(`inet ${ip}/24`);
    expect(r.out.split('\n').pop()).toBe('02:42:0a:00:00:99');
    expect((await s.corral(['run', '--rm', '-p', 'x:80', 'busybox', 'true'])).status).toBe(125);
  });

  // Docker bind-mounts these three: they are never in the container's layer, so a committed
  // image keeps the image's own, not the container's name, peers and resolvers.
  it('commit leaves the /etc/hosts, /etc/hostname and /etc/resolv.conf it wrote out of the image', async () => {
    await s.corral([
      'run',
      '--name',
      'etc-commit',
      '--hostname',
      'secret-name',
      '--add-host',
      'db:10.9.9.8',
      'busybox',
      'sh',
      '-c',
      'echo mine > /etc/mine',
    ]);
    expect((await s.corral(['commit', 'etc-commit', 'etc-commit:1'])).status).toBe(0);
    const tar = join(s.root, 'etc-commit.tar');
    expect((await s.corral(['save', '-o', tar, 'etc-commit:1'])).status).toBe(0);
    const dir = join(s.root, 'etc-commit');
    execFileSync('mkdir', ['-p', dir]);
    execFileSync('tar', ['-xf', tar, '-C', dir]);
    const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'))[0];
    const top = execFileSync('tar', ['-tf', join(dir, manifest.Layers.at(-1))], { encoding: 'utf8' });
    expect(top.split('\n').filter((l) => l.startsWith('etc/'))).toEqual(['etc/mine']);
    const fresh = await s.corral([
      'run',
      '--rm',
      '--network',
      'none',
      'etc-commit:1',
      'sh',
      '-c',
      'cat /etc/mine /etc/hosts',
    ]);
    expect(fresh.out).toContain('mine');
    expect(fresh.out).not.toContain('db');
    await s.corral(['rm', 'etc-commit']);
    await s.corral(['rmi', 'etc-commit:1']);
    rmSync(dir, { recursive: true, force: true });
    rmSync(tar, { force: true });
  });

  it('writes /etc/hosts and /etc/resolv.conf as Docker does on the default bridge', async () => {
    const r = await s.corral([
      'run',
      '--rm',
      'busybox',
      'sh',
      '-c',
      'cat /etc/hosts; echo ---; cat /etc/resolv.conf; echo ---; hostname; ip -o -4 addr show eth0',
    ]);
    const [hosts, resolv, rest] = r.out.split('---\n');
    const [hostname, addr] = rest.split('\n');
    const ip = /inet (\S+)\//.exec(addr)?.[1];
    expect(hostname).toMatch(/^[0-9a-f]{12}$/);
    expect(hosts).toBe(
      [
        '127.0.0.1\tlocalhost',
        '::1\tlocalhost ip6-localhost ip6-loopback',
        'fe00::0\tip6-localnet',
        'ff00::0\tip6-mcastprefix',
        'ff02::1\tip6-allnodes',
        'ff02::2\tip6-allrouters',
        `${ip}\t${hostname}`,
        '',
      ].join('\n'),
    );
    // The host's file as it is, less loopback (and IPv6) resolvers; Docker's defaults if none is left.
    const host = readFileSync('/etc/resolv.conf', 'utf8');
    const kept = host
      .split('\n')
      .filter((l) => !/^\s*nameserver\s+(127\.|::1|\S*:)/.test(l))
      .join('\n')
      .replace(/\n*$/, '\n');
    const expected = /^\s*nameserver/m.test(kept) ? kept : `${kept}nameserver 8.8.8.8\nnameserver 8.8.4.4\n`;
    expect(`${resolv}`).toBe(expected);
  });

  it('joins another container with --network container:NAME', async () => {
    const r = await s.corral([
      'run',
      '--rm',
      '--network',
      'container:alpha',
      'busybox',
      'wget',
      '-q',
      '-O',
      '-',
      'http://127.0.0.1:8080/a',
    ]);
    expect(r.out).toBe('from-alpha');
  });

  it("lists Docker's pre-defined bridge, host and none networks, and inspects host and none", async () => {
    const ls = (await s.corral(['network', 'ls'])).out.split('\n');
    expect(ls[0].split(/\s{2,}/)).toEqual(['NETWORK ID', 'NAME', 'DRIVER', 'SCOPE']);
    const rows = ls.slice(1).map((l) => l.split(/\s+/));
    const byName = Object.fromEntries(rows.map(([id, name, driver, scope]) => [name, { id, driver, scope }]));
    expect(byName.bridge).toMatchObject({ driver: 'bridge', scope: 'local' });
    expect(byName.host).toMatchObject({ driver: 'host', scope: 'local' });
    expect(byName.none).toMatchObject({ driver: 'null', scope: 'local' });
    expect(byName.n1.driver).toBe('bridge');
    // A running host-mode container is on `host`; found by name and by its id's prefix alike.
    await s.corral(['run', '-d', '--name', 'onhost', '--network', 'host', 'busybox', 'sleep', '60']);
    const host = JSON.parse((await s.corral(['network', 'inspect', byName.host.id])).out)[0];
    expect(host).toMatchObject({ name: 'host', driver: 'host' });
    expect(host.containers.map((x: { name: string }) => x.name)).toEqual(['onhost']);
    const none = JSON.parse((await s.corral(['network', 'inspect', 'none'])).out)[0];
    expect(none).toMatchObject({ name: 'none', driver: 'null', containers: [] });
    // Neither can be removed, nor joined or left by connect/disconnect.
    const rm = await s.corral(['network', 'rm', 'host']);
    expect(rm.status).toBe(1);
    expect(rm.stderr).toContain('pre-defined');
    const conn = await s.corral(['network', 'connect', 'none', 'alpha']);
    expect(conn.status).not.toBe(0);
    expect(conn.stderr).toContain('cannot be disconnected from none network or connected to none network');
    await s.corral(['rm', '-f', 'onhost']);
  });

  it("-P publishes the image's EXPOSEd ports on free host ports, served through 127.0.0.1", async () => {
    // busybox with EXPOSE 8080/tcp and 9090/udp: its saved archive with the config changed.
    const dir = join(s.root, '..', `${s.root.split('/').pop()}-exposed`);
    try {
      await s.corral(['save', 'busybox', '-o', `${dir}.tar`]);
      execFileSync('mkdir', ['-p', dir]);
      execFileSync('tar', ['-xf', `${dir}.tar`, '-C', dir]);
      const [m] = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
      const config = JSON.parse(readFileSync(join(dir, m.Config), 'utf8'));
      config.config.ExposedPorts = { '8080/tcp': {}, '9090/udp': {} };
      writeFileSync(join(dir, 'exposed.json'), JSON.stringify(config));
      const manifest = [{ Config: 'exposed.json', RepoTags: ['exposed:latest'], Layers: m.Layers }];
      writeFileSync(join(dir, 'manifest.json'), JSON.stringify(manifest));
      rmSync(join(dir, 'index.json'));
      rmSync(join(dir, 'oci-layout'));
      execFileSync('tar', ['-cf', `${dir}-e.tar`, '-C', dir, '.']);
      expect((await s.corral(['load', '-i', `${dir}-e.tar`])).out).toBe('Loaded image: exposed:latest');
    } finally {
      rmSync(dir, { recursive: true, force: true });
      rmSync(`${dir}.tar`, { force: true });
      rmSync(`${dir}-e.tar`, { force: true });
    }
    await s.corral(['run', '-d', '--name', 'exposed', '-P', 'exposed', 'sh', '-c', httpd('e', 'exposed-ok')]);
    const ports = (await s.corral(['port', 'exposed'])).out.split('\n');
    expect(ports).toEqual([
      expect.stringMatching(/^8080\/tcp -> 0\.0\.0\.0:\d+$/),
      expect.stringMatching(/^9090\/udp -> 0\.0\.0\.0:\d+$/),
    ]);
    const port = Number(ports[0].split(':').pop());
    let res = { status: 0, body: '' };
    await until(async () => {
      res = await get(port, '/e').catch(() => res);
      return res.status === 200;
    }, 'httpd to answer on the -P port through 127.0.0.1');
    expect(res.body).toBe('exposed-ok\n');
    await s.corral(['rm', '-f', 'exposed']);
  });

  it('network create --subnet/--gateway/--internal, refusals, and network prune', async () => {
    const made = await s.corral([
      'network',
      'create',
      '--subnet',
      '10.250.7.0/24',
      '--gateway',
      '10.250.7.254',
      '--internal',
      'n3',
    ]);
    expect([made.status, made.stderr]).toEqual([0, '']);
    const n3 = JSON.parse((await s.corral(['network', 'inspect', 'n3'])).out)[0];
    expect(n3).toMatchObject({ subnet: '10.250.7.0/24', gateway: '10.250.7.254', internal: true });
    bridges.push(n3.bridge);
    // An internal network: an address in the subnet, the gateway on the bridge, no way out.
    const r = await s.corral([
      'run',
      '--rm',
      '--network',
      'n3',
      'busybox',
      'sh',
      '-c',
      'ip -4 -o addr show eth0; ip route',
    ]);
    expect(r.out).toMatch(/inet 10\.250\.7\.\d+\/24/);
    expect(r.out).not.toMatch(/^default/m);
    // Refused, with nothing made: an overlapping subnet, --gateway alone, a bad subnet, a reserved name.
    const overlap = await s.corral(['network', 'create', '--subnet', '10.250.7.128/25', 'n4']);
    expect([overlap.status, overlap.stderr]).toEqual([1, expect.stringContaining('overlaps network n3')]);
    const gwOnly = await s.corral(['network', 'create', '--gateway', '10.250.8.1', 'n4']);
    expect([gwOnly.status, gwOnly.stderr]).toEqual([1, expect.stringContaining('--gateway needs --subnet')]);
    expect((await s.corral(['network', 'create', '--subnet', '10.250.8.0/33', 'n4'])).status).toBe(1);
    expect((await s.corral(['network', 'create', 'host'])).status).toBe(1);
    expect((await s.corral(['network', 'ls', '--format', '{{.Name}}'])).out.split('\n')).not.toContain('n4');
    // prune removes the unused user network (not bridge, not one a container names).
    const prune = await s.corral(['network', 'prune', '-f']);
    expect(prune.out.split('\n')).toContain('n3');
    expect(prune.out.split('\n')).not.toContain('n1'); // alpha names it
    expect((await s.corral(['network', 'ls', '--format', '{{.Name}}'])).out.split('\n')).toEqual(
      expect.arrayContaining(['bridge', 'host', 'none', 'n1']),
    );
    expect(hostLinks()).not.toContain(n3.bridge);
  });

  it('takes down what a SIGKILLed container left, at the next command', async () => {
    await s.corral(['run', '-d', '--name', 'doomed', '-p', '127.0.0.1::8080', 'busybox', 'sleep', '60']);
    const rec = JSON.parse((await s.corral(['inspect', 'doomed'])).out)[0];
    expect(rec.networkSettings.ports[0].hostPort).toBeGreaterThan(0);
    process.kill(rec.state.watcherPid, 'SIGKILL');
    process.kill(rec.state.pid, 'SIGKILL');
    // The command that sees it dead records the exit; the network goes at that command's open
    // or, when the container was still dying then, at the next one.
    await until(
      async () => !(await s.corral(['ps'])).out.includes('doomed') && !networkState().netns.includes(rec.id),
      'doomed to be seen exited and its network taken down',
    );
    expect(rulesWith([`:${rec.networkSettings.ports[0].hostPort}`])).toEqual([]);
  });

  it('leaves no veth, bridge, rule, lease or namespace once its containers and networks are gone (the default one with network down)', async () => {
    const ids = readdirSync(join(s.root, 'containers'));
    // The host ends of the running containers' veths, from the CNI results corral keeps.
    const attDir = join(s.root, 'network', 'attachments');
    const veths = readdirSync(attDir).flatMap((id) =>
      readdirSync(join(attDir, id)).flatMap((f) => {
        const att = JSON.parse(readFileSync(join(attDir, id, f), 'utf8'));
        return (att.result?.interfaces ?? [])
          .filter((i: { sandbox?: string }) => !i.sandbox)
          .map((i: { name: string }) => i.name);
      }),
    );
    expect(veths.some((v) => v.startsWith('veth'))).toBe(true);
    await s.corral(['rm', '-f', ...ids]);
    expect((await s.corral(['network', 'rm', 'n1', 'n2'])).status).toBe(0);
    expect((await s.corral(['network', 'ls', '-q'])).out.split('\n')).toHaveLength(3); // bridge, host, none
    expect(networkState()).toEqual({ netns: [], attachments: [], leases: [] });
    const now = hostLinks();
    // The default network lives on, and keeps its bridge as docker0 does; the others' went.
    const [dflt, ...others] = bridges;
    expect(now).toContain(dflt);
    for (const b of others) expect(now).not.toContain(b);
    for (const v of veths.filter((v) => !bridges.includes(v))) expect(now).not.toContain(v);
    expect(rulesWith([...others, `:${hostPort}`])).toEqual([]);
    // `network down` takes the default bridge and its rules away (Sandbox.teardown runs it).
    expect((await s.corral(['network', 'down'])).out).toBe(dflt);
    expect(hostLinks()).not.toContain(dflt);
    expect(rulesWith(bridges)).toEqual([]);
    expect(ipForward()).toBe('0');
  });
});
