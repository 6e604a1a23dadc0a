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
