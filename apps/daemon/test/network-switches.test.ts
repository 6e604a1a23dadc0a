// dockerd's network switches on corrald: --iptables, --ip-forward, --ip-masq and their
// daemon.json keys. corrald gives the engine all three (corral's defaults where not set), and
// the engine keeps them with the data root, so the keepers and `corral --root` commands on it
// follow the daemon's configuration. What the switches do to traffic is tested in a namespace
// of the test's own (packages/network/test/forwarding.test.ts): here nothing turns them on.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Cleanups, exec, runCorral } from '@corral/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import { CORRALD, startDaemon } from './daemon.js';

const c = new Cleanups();
afterEach(() => c.run());

const settings = (root: string) => JSON.parse(readFileSync(join(root, 'network', 'settings.json'), 'utf8'));

describe('corrald network switches', () => {
  it('refuses a switch that is not a boolean, as a flag and in daemon.json', async () => {
    const bad = await exec(process.execPath, [CORRALD, '--ip-masq=maybe']);
    expect([bad.status, bad.stderr]).toEqual([
      1,
      expect.stringContaining('invalid value "maybe" for --ip-masq'),
    ]);
    const file = join(c.tempDir('switches'), 'daemon.json');
    writeFileSync(file, JSON.stringify({ 'ip-forward': 'yes' }));
    const inFile = await exec(process.execPath, [CORRALD, '--config-file', file]);
    expect([inFile.status, inFile.stderr]).toEqual([
      1,
      expect.stringContaining('invalid value "yes" for ip-forward'),
    ]);
  });

  it("keeps corral's defaults with the root, and --iptables=false for the CLI on that root too", async () => {
    const d = await startDaemon(c, []);
    expect(settings(d.root)).toEqual({ iptables: true, ipForward: false, ipMasq: false });
    d.child.kill('SIGTERM');
    await new Promise((r) => d.child.once('exit', r));
    const off = await startDaemon(c, ['--iptables=false']);
    expect(settings(off.root)).toEqual({ iptables: false, ipForward: false, ipMasq: false });
    // A CLI command on the root follows the daemon's configuration: no port without iptables.
    const r = await runCorral(off.root, ['run', '--rm', '--network', 'none', 'busybox', 'true']);
    expect(r.status).toBe(0);
    const p = await runCorral(off.root, ['run', '--rm', '-p', '127.0.0.1::80', 'busybox', 'true']);
    expect(p.status).toBe(125);
    expect(p.stderr).toContain('iptables is turned off in the engine configuration');
  });
});

describe("corrald's /networks endpoints, through the docker CLI", () => {
  it('network create, ls (with host and none), inspect, connect, disconnect, rm, prune', async () => {
    const d = await startDaemon(c, []);
    const docker = async (args: string[]) => {
      const r = await d.docker(args);
      return { ...r, out: r.stdout.trim() };
    };
    const made = await docker(['network', 'create', '--subnet', '10.250.9.0/24', '--internal', 'dn1']);
    expect([made.status, made.stderr]).toEqual([0, '']);
    expect(made.out).toMatch(/^[0-9a-f]{64}$/);
    const ls = (await docker(['network', 'ls', '--format', '{{.Name}} {{.Driver}} {{.Scope}}'])).out.split(
      '\n',
    );
    expect(ls.sort()).toEqual([
      'bridge bridge local',
      'dn1 bridge local',
      'host host local',
      'none null local',
    ]);
    const subnet = await docker([
      'network',
      'inspect',
      'dn1',
      '-f',
      '{{(index .IPAM.Config 0).Subnet}} {{.Internal}}',
    ]);
    expect(subnet.out).toBe('10.250.9.0/24 true');
    expect(
      (await docker(['run', '-d', '--name', 'dc', '--network', 'none', 'busybox', 'sleep', '60'])).status,
    ).toBe(0);
    expect(
      (await docker(['network', 'inspect', 'none', '-f', '{{range .Containers}}{{.Name}}{{end}}'])).out,
    ).toBe('dc');
    // A bridge container joins dn1 while it runs, and leaves it.
    expect((await docker(['run', '-d', '--name', 'db', 'busybox', 'sleep', '60'])).status).toBe(0);
    expect((await docker(['network', 'connect', 'dn1', 'db'])).status).toBe(0);
    const ip = (
      await docker(['network', 'inspect', 'dn1', '-f', '{{range .Containers}}{{.IPv4Address}}{{end}}'])
    ).out;
    expect(ip).toMatch(/^10\.250\.9\.\d+\/24$/);
    const eth1 = await docker(['exec', 'db', 'ip', '-4', '-o', 'addr', 'show', 'eth1']);
    expect(eth1.out).toContain(`inet ${ip}`);
    const rmBusy = await docker(['network', 'rm', 'dn1']);
    expect(rmBusy.status).not.toBe(0);
    expect((await docker(['network', 'disconnect', 'dn1', 'db'])).status).toBe(0);
    expect((await docker(['exec', 'db', 'ls', '/sys/class/net'])).out.split('\n').sort()).toEqual([
      'eth0',
      'lo',
    ]);
    const host = await docker(['network', 'rm', 'host']);
    expect(host.status).not.toBe(0);
    expect(host.stderr).toContain('pre-defined');
    expect((await docker(['network', 'create', 'dn2'])).status).toBe(0);
    expect((await docker(['network', 'rm', 'dn1'])).out).toBe('dn1');
    const prune = await docker(['network', 'prune', '-f']);
    expect(prune.out).toContain('dn2');
    expect((await docker(['network', 'ls', '-q'])).out.split('\n')).toHaveLength(3);
    await docker(['rm', '-f', 'dc', 'db']);
  });
});
