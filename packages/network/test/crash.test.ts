import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Cleanups, until } from '@corral/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import { reconcile } from '../src/index.js';
import { hostState, ipForward, leases, scoped, testManager } from './helpers.js';

const c = new Cleanups();
afterEach(() => c.run());

describe('crash between ADD and DEL', () => {
  it('kill -9 of the attaching process leaves a veth, rules and a lease; reconcile removes them all', async () => {
    expect(existsSync(join(import.meta.dirname, '../dist/index.js'))).toBe(true); // the fixture runs the build
    const before = await hostState();
    const mgr = testManager(c, 'crash');
    await mgr.createNetwork({ name: 'crashnet' });
    const child = spawn(
      process.execPath,
      [join(import.meta.dirname, 'fixtures/attach-and-hang.mjs'), mgr.root, 'victim', 'crashnet'],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    c.add(() => child.kill('SIGKILL'));
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    const added = JSON.parse(await until(() => out.includes('\n') && out, 'the fixture to finish ADD'));
    expect(added.port).toBeGreaterThan(0);
    child.kill('SIGKILL');
    await until(() => child.exitCode !== null || child.signalCode !== null, 'the fixture to die');

    // What the dead process left: its namespace, a veth on the bridge, portmap's rules, a lease.
    const bridge = mgr.networks.get('crashnet').bridge;
    const mine = async () => scoped(await hostState(), [bridge], [added.port]);
    expect(scoped(before, [bridge], [added.port])).toEqual({ links: [], rules: [] });
    const left = await mine();
    expect(left.links).toHaveLength(2); // the bridge and the veth on it
    expect(left.rules.some((r) => r.includes(`--dport ${added.port}`))).toBe(true);
    expect(await leases(mgr)).toEqual([`crashnet/${added.ip}`]);
    expect(mgr.netns.list()).toEqual(['victim']);

    const report = await reconcile(mgr, () => false);
    expect(report.containers).toEqual(['victim']);
    expect(report.errors).toEqual([]);
    // The live network keeps its bridge (and its guard); the veth, lease and port rules are gone.
    const kept = await mine();
    expect(kept.links).toEqual([bridge]);
    expect(kept.rules.some((r) => r.includes(`--dport ${added.port}`))).toBe(false);
    expect(await leases(mgr)).toEqual([]);
    await mgr.removeNetwork('crashnet');
    expect(await mine()).toEqual({ links: [], rules: [] }); // no veth, no bridge, no rule
    expect(await leases(mgr)).toEqual([]);
    expect(mgr.netns.list()).toEqual([]);
    expect(mgr.attachments()).toEqual([]);
    expect(ipForward()).toBe('0');
  });

  it('reconcile keeps what a live container uses', async () => {
    const mgr = testManager(c, 'keep');
    await mgr.createNetwork({ name: 'keepnet' });
    await mgr.createSandbox('alive');
    const att = await mgr.connect('alive', 'alive', 'keepnet');
    const report = await reconcile(mgr, (id) => id === 'alive');
    expect(report).toEqual({ containers: [], bridges: [], leases: [], errors: [] });
    expect(await leases(mgr)).toEqual([`keepnet/${att.ip}`]);
    expect(mgr.netns.isPinned('alive')).toBe(true);
  });
});
