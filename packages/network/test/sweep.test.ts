// A data root removed without `network down` leaves its bridge and rules on the host: the sweep
// finds them by the owner named in the bridge's alias and removes them, and nothing else.
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '@corral/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { ensureBridge, removeBridge, ruleset, sweepOrphanBridges } from '../src/host.js';

const base = tempDir('corral-sweep');
const tag = process.pid.toString(16).slice(-4);
const kept = `crl-swk${tag}`;
const orphan = `crl-swo${tag}`;

afterAll(async () => {
  await removeBridge(kept, true);
  await removeBridge(orphan, true);
  rmSync(base, { recursive: true, force: true });
});

const linkExists = (name: string) => spawnSync('ip', ['link', 'show', name]).status === 0;
const rulesOf = async (name: string) => {
  const rs = await ruleset();
  return [...rs.values()].flatMap((chains) => [...chains.values()].flat()).filter((r) => r.includes(name));
};

describe('sweepOrphanBridges', () => {
  it('removes the bridge and rules of a gone network folder, and keeps one whose folder is there', async () => {
    const live = join(base, 'live', 'network');
    const gone = join(base, 'gone', 'network');
    mkdirSync(live, { recursive: true });
    mkdirSync(gone, { recursive: true });
    const octet = 200 + (process.pid % 50);
    await ensureBridge(kept, `10.251.${octet}.1/24`, true, live);
    await ensureBridge(orphan, `10.252.${octet}.1/24`, true, gone);
    expect(await rulesOf(orphan)).not.toEqual([]);
    rmSync(join(base, 'gone'), { recursive: true });
    const removed = await sweepOrphanBridges();
    expect(removed).toContainEqual({ bridge: orphan, owner: gone });
    expect(removed.map((r) => r.bridge)).not.toContain(kept);
    expect(linkExists(orphan)).toBe(false);
    expect(await rulesOf(orphan)).toEqual([]);
    expect(linkExists(kept)).toBe(true);
    expect(await rulesOf(kept)).not.toEqual([]);
  });
});
