import { Cleanups } from '@corral/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import {
  CniDriver,
  hostsFile,
  MissingPluginError,
  NetworkError,
  NetworkManager,
  NetworkStore,
  parsePort,
  pluginConfig,
  resolvConf,
} from '../src/index.js';
import { allocateSubnet } from '../src/subnet.js';

const c = new Cleanups();
afterEach(() => c.run());

describe('published ports', () => {
  it('parses Docker -p forms', () => {
    expect(parsePort('8080')).toEqual({
      hostIP: '0.0.0.0',
      hostPort: 0,
      containerPort: 8080,
      protocol: 'tcp',
    });
    expect(parsePort('9000:80')).toEqual({
      hostIP: '0.0.0.0',
      hostPort: 9000,
      containerPort: 80,
      protocol: 'tcp',
    });
    expect(parsePort('127.0.0.1:9000:80/udp')).toEqual({
      hostIP: '127.0.0.1',
      hostPort: 9000,
      containerPort: 80,
      protocol: 'udp',
    });
    expect(parsePort('127.0.0.1::80')).toEqual({
      hostIP: '127.0.0.1',
      hostPort: 0,
      containerPort: 80,
      protocol: 'tcp',
    });
    for (const bad of ['0', '70000', 'x:80', '1.2.3:80:80', '80/sctp', '1:2:3:4'])
      expect(() => parsePort(bad), bad).toThrow(NetworkError);
  });
});

describe('/etc files as Docker writes them', () => {
  it('resolv.conf drops loopback resolvers and takes --dns, --dns-search, --dns-option', () => {
    const host =
      '# generated\nnameserver 127.0.0.53\nnameserver 10.0.0.2\nnameserver ::1\nsearch corp.example\noptions edns0\n';
    // Docker's filter: the host's file as it is, less loopback and IPv6 resolvers.
    expect(resolvConf(host)).toBe('# generated\nnameserver 10.0.0.2\nsearch corp.example\noptions edns0\n');
    expect(resolvConf('nameserver 127.0.0.53\n')).toBe('nameserver 8.8.8.8\nnameserver 8.8.4.4\n');
    expect(resolvConf('# only loopback\nnameserver 127.0.0.1\nsearch x.example\n')).toBe(
      '# only loopback\nsearch x.example\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n',
    );
    // Any option: Docker's built file, the host's values where no option replaces them.
    expect(resolvConf(host, { dns: ['192.0.2.53'], search: ['a.example'], options: ['ndots:2'] })).toBe(
      'search a.example\nnameserver 192.0.2.53\noptions ndots:2\n',
    );
    expect(resolvConf(host, { options: ['ndots:2', 'timeout:1'] })).toBe(
      'search corp.example\nnameserver 10.0.0.2\noptions ndots:2 timeout:1\n',
    );
  });

  it('hosts: loopback block, --add-host, the container, its peers', () => {
    const h = hostsFile({
      hostname: 'web',
      ips: ['10.213.0.2'],
      extra: [{ ip: '192.0.2.9', names: ['db'] }],
      peers: [{ ip: '10.213.0.3', names: ['api', 'api-alias'] }],
    });
    expect(h.split('\n').slice(0, 2)).toEqual([
      '127.0.0.1\tlocalhost',
      '::1\tlocalhost ip6-localhost ip6-loopback',
    ]);
    expect(h).toContain('\n192.0.2.9\tdb\n10.213.0.2\tweb\n10.213.0.3\tapi api-alias\n');
  });
});

describe('CNI invocation', () => {
  it("a plugin's stdin: the list's name and version, prevResult, only the capabilities it declares", () => {
    const list = {
      cniVersion: '1.0.0',
      name: 'n',
      plugins: [{ type: 'portmap', capabilities: { portMappings: true }, snat: true }],
    };
    const conf = pluginConfig(list, 0, { portMappings: [{ hostPort: 1 }], mac: 'x' }, { ips: [] });
    expect(conf).toEqual({
      type: 'portmap',
      snat: true,
      cniVersion: '1.0.0',
      name: 'n',
      runtimeConfig: { portMappings: [{ hostPort: 1 }] },
      prevResult: { ips: [] },
    });
  });

  it('a missing plugin names the Debian package to install; the namespace goes with destroySandbox', async () => {
    const mgr = new NetworkManager({
      root: c.tempDir('net-missing'),
      driver: new CniDriver(['/nonexistent/cni']),
    });
    // corral brings lo up itself: a namespace needs no plugin; the first plugin run names it.
    const path = await mgr.createSandbox('x');
    const err = await mgr.driver.loopback('x', path, 'ADD').catch((e) => e);
    expect(err).toBeInstanceOf(MissingPluginError);
    expect(err.message).toMatch(/apt-get install containernetworking-plugins/);
    await mgr.destroySandbox('x');
    expect(mgr.netns.list()).toEqual([]);
  });

  it('subnets: the first /24 of the pool that no route or network overlaps', () => {
    expect(
      allocateSubnet('10.213.0.0/16', 24, [
        '10.213.0.0/24',
        '10.213.1.7/32',
        '0.0.0.0/1'.replace('0.0.0.0/1', '192.0.2.0/24'),
      ]),
    ).toBe('10.213.2.0/24');
  });
});

describe('network names', () => {
  // A name that is one network's id prefix (or several's) is still free for a new network, as
  // in Docker: with 17 networks two ids share a first hex digit, and that digit is a fine name.
  it('a name is checked against names alone, never against id prefixes', () => {
    const store = new NetworkStore(c.tempDir('net-names'));
    for (let i = 0; i < 17; i++) store.create({ name: `n${i}`, subnet: `10.231.${i}.0/24` });
    const first = store.list().map((n) => n.id[0]);
    const shared = first.find((d, i) => first.indexOf(d) !== i)!;
    expect(() => store.find(shared)).toThrow(/ambiguous/);
    const made = store.create({ name: shared, subnet: '10.231.100.0/24' });
    expect(store.get(shared).id).toBe(made.id);
    expect(() => store.create({ name: shared, subnet: '10.231.101.0/24' })).toThrow(/already exists/);
  });
});
