import { existsSync } from 'node:fs';
import type { NetworkDriver } from '../driver.js';
import type { Attachment } from '../types.js';
import { loopbackConf, pluginConfig } from './conflist.js';
import { type CniResult, DEFAULT_CNI_PATH, findPlugin, invokePlugin } from './invoke.js';

/** The CNI backend: Debian's containernetworking-plugins, run as the spec says. */
export class CniDriver implements NetworkDriver {
  readonly name = 'cni';
  constructor(readonly cniPath: readonly string[] = DEFAULT_CNI_PATH) {}

  /** Fails early, naming the Debian package, when a plugin of the list is missing. */
  check(types: readonly string[]): void {
    for (const t of types) findPlugin(t, this.cniPath);
  }

  async loopback(containerId: string, netns: string, command: 'ADD' | 'DEL'): Promise<void> {
    await invokePlugin('loopback', loopbackConf, {
      command,
      containerId,
      netns: existsSync(netns) ? netns : undefined,
      ifname: 'lo',
      cniPath: this.cniPath,
    });
  }

  /** ADD through the list in order, each plugin given the previous one's result. */
  async add(att: Attachment): Promise<CniResult> {
    const list = att.conflist;
    this.check(list.plugins.map((p) => p.type));
    let prev: CniResult | undefined;
    for (let i = 0; i < list.plugins.length; i++) {
      const conf = pluginConfig(list, i, att.runtimeConfig, prev);
      prev = await invokePlugin(list.plugins[i].type, conf, this.inv(att, 'ADD'));
    }
    if (!prev) throw new Error(`CNI list ${list.name} returned no result`);
    return prev;
  }

  /**
   * DEL of every plugin of the list, each given the ADD's final result (or none when ADD never
   * finished). Every plugin runs even when one fails; the first failure (in the list's
   * reverse order, the spec's) is thrown. The plugins corral lists (bridge with host-local,
   * portmap; firewall in older lists) undo independent things (the veth and lease, the port
   * rules, the container's filter rules), so their DELs run side by side: a `run --rm` waits
   * for the slowest rather than the sum (portmap's alone is several iptables runs).
   */
  async del(att: Attachment): Promise<void> {
    const list = att.conflist;
    const done = await Promise.allSettled(
      list.plugins.map((p, i) =>
        invokePlugin(p.type, pluginConfig(list, i, att.runtimeConfig, att.result), this.inv(att, 'DEL')),
      ),
    );
    const failed = done.reverse().find((d) => d.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
  }

  private inv(att: Attachment, command: 'ADD' | 'DEL') {
    return {
      command,
      containerId: att.containerId,
      // The spec lets DEL run without a namespace (it was removed); plugins then clean the host side.
      netns: command === 'DEL' && !existsSync(att.netns) ? undefined : att.netns,
      ifname: att.ifname,
      cniPath: this.cniPath,
    };
  }
}
