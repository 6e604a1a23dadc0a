// The engine's networking through its own API (what the daemon gets for free): options checked
// at create, namespaces made at start and gone at stop, the switches, /etc files written inside
// the root. Traffic: none leaves the host; ip forwarding stays off.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { busyboxRootfs, Cleanups, unmountUnder } from '@corral/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { Engine } from '../src/engine.js';
import { EngineError } from '../src/errors.js';

const cleanups = new Cleanups();
const root = cleanups.tempDir('engine-net');
cleanups.add(async () => {
  const e = new Engine({ root });
  for (const c of e.list({ all: true })) await e.remove(c.id, { force: true }).catch(() => {});
  for (const n of await e.networks.list()) await e.networks.remove(n.name).catch(() => {});
  await e.networks.down(); // the default network's bridge and rules
  unmountUnder(root);
});
afterAll(() => cleanups.run());

const netns = () => {
  const dir = join(root, 'network', 'netns');
  return existsSync(dir) ? readdirSync(dir) : [];
};
const kindOf = async (p: Promise<unknown>) => {
  try {
    await p;
    return 'ok';
  } catch (e) {
    return e instanceof EngineError ? e.kind : String(e);
  }
};
const ipForward = () => readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim();

describe('networking in the engine', () => {
  it('refuses bad network options at create, before anything is made', async () => {
    const e = await Engine.open({ root });
    const bad = [
      { publish: ['70000:80'] },
      { publish: ['1.2.3:80:80'] },
      { network: 'no-such-net' },
      { ip: '10.1.2.3' }, // only on a user network
      { addHost: ['nocolon'] },
      { network: 'container:no-such-container' },
    ];
    for (const o of bad)
      expect([JSON.stringify(o), await kindOf(e.create({ image: 'busybox', cmd: ['true'], ...o }))]).toEqual([
        JSON.stringify(o),
        o.network === 'no-such-net' || o.network?.startsWith('container:') ? 'NotFound' : 'InvalidArgument',
      ]);
    expect(e.list({ all: true })).toEqual([]);
  });

  it('makes the namespace at start and takes it away at stop; ports come and go with it', async () => {
    const e = await Engine.open({ root });
    const r = await e.create({
      image: 'busybox',
      cmd: ['sleep', '60'],
      name: 'svc',
      publish: ['127.0.0.1::80'],
    });
    expect(netns()).toEqual([]);
    expect(e.ports('svc')).toEqual([]);
    await e.start('svc');
    expect(netns()).toEqual([r.id]);
    const [p] = e.ports('svc');
    expect(p).toMatchObject({ hostIP: '127.0.0.1', containerPort: 80, protocol: 'tcp' });
    expect(p.hostPort).toBeGreaterThan(0);
    expect(e.list()[0].ports).toEqual([p]);
    const settings = e.inspect('svc').networkSettings;
    expect(settings.mode).toBe('bridge');
    expect(settings.networks.bridge.ip).toMatch(/^10\.\d+\.\d+\.\d+$/);
    await e.stop('svc', 0);
    expect(netns()).toEqual([]);
    expect(e.ports('svc')).toEqual([]);
    await e.remove('svc');
    expect(ipForward()).toBe('0');
  });

  it('with iptables off, publishes nothing and adds no rule', async () => {
    const e = await Engine.open({ root, network: { iptables: false } });
    expect(
      await kindOf(e.run({ image: 'busybox', cmd: ['true'], publish: ['80'], autoRemove: true }, {})),
    ).toBe('InvalidArgument');
    const net = await e.networks.create({ name: 'quiet' });
    const h = await e.run(
      { image: 'busybox', cmd: ['sh', '-c', 'ip -o -4 addr show eth0'], network: 'quiet', autoRemove: true },
      { stdout: 'pipe' },
    );
    let out = '';
    for await (const c of h.stdout ?? []) out += c;
    expect(await h.wait()).toBe(0);
    expect(out).toContain(`inet ${net.subnet.replace(/0\/24$/, '')}`);
    await e.networks.remove('quiet');
    expect(execFileSync('iptables-save', { encoding: 'utf8' })).not.toContain(net.bridge);
  });

  it("writes /etc files inside the container's root: a symlink in the image cannot reach a host file", async () => {
    const dir = cleanups.tempDir('engine-net-rootfs');
    const rootfs = busyboxRootfs(join(dir, 'rootfs'), 'etc');
    const canary = join(dir, 'canary');
    writeFileSync(canary, 'host file\n');
    symlinkSync(canary, join(rootfs, 'etc', 'hosts'));
    const e = await Engine.open({ root });
    const h = await e.run(
      { rootfs, cmd: ['cat', '/etc/hosts'], network: 'none', addHost: ['db:10.9.9.9'], autoRemove: true },
      { stdout: 'pipe' },
    );
    let out = '';
    for await (const c of h.stdout ?? []) out += c;
    expect(await h.wait()).toBe(0);
    expect(out).toContain('10.9.9.9\tdb');
    expect(readFileSync(canary, 'utf8')).toBe('host file\n');
    // It was written inside the root instead (in the container's layer, where the link led).
    expect(readFileSync(canary, 'utf8')).not.toContain('db');
  });
});
