import { Cleanups } from '@corral/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import { ensureBridgeRules, ISOLATION_CHAIN, pruneSharedChains, removeBridge, ruleset } from '../src/host.js';

// The iptables chains every data root's bridges share (CORRAL-FORWARD, CORRAL-ISOLATION) are
// made by the first network and pruned after the last: two roots doing both at once must
// neither fail an add (the chain pruned between the check and the add) nor lose the rules
// just added (the chain flushed by a prune that saw it empty a moment before).
const c = new Cleanups();
afterEach(() => c.run());

describe('shared chains', () => {
  it('two roots making and pruning their bridges at once never lose a rule or the chain', async () => {
    const tag = (process.pid % 100000).toString(36);
    const bridges = [`crl-race-a${tag}`, `crl-race-b${tag}`];
    c.add(async () => {
      for (const br of bridges) await removeBridge(br, true);
      await pruneSharedChains();
    });
    const rulesOf = async (br: string) =>
      ((await ruleset()).get('filter')?.get(ISOLATION_CHAIN) ?? []).filter((r) => r.includes(br));
    const cycle = async (br: string) => {
      for (let i = 0; i < 12; i++) {
        await ensureBridgeRules(br);
        // Its isolation rule is there once the call returns, whatever the other root did meanwhile.
        expect(await rulesOf(br), `${br}, round ${i}`).toHaveLength(1);
        await removeBridge(br, true);
        await pruneSharedChains();
      }
    };
    // Both finish before the cleanup runs, also when one fails.
    const done = await Promise.allSettled(bridges.map(cycle));
    for (const d of done) if (d.status === 'rejected') throw d.reason;
  });
});
